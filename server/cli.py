"""The `conversation-service` command line: serve, migrate, organisations."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from server import api_keys, connections, organisations
from server.app import serve
from server.config import DEFAULT_DATABASE_URL, DEFAULT_GRPC_ADDRESS, DEFAULT_HTTP_ADDRESS, Config
from server.domain import Organisation
from server.errors import DomainError
from server.logs import configure_logging
from server.proxy import run_proxy

ENV_PREFIX = "CONVERSATION_SERVICE_"


def _parser() -> argparse.ArgumentParser:
    database = argparse.ArgumentParser(add_help=False)
    _option(
        database,
        "database-url",
        DEFAULT_DATABASE_URL,
        "peewee database URL: sqlite:///PATH (embedded) or postgresql://USER@HOST:PORT/NAME",
    )
    parser = argparse.ArgumentParser(
        prog="conversation-service",
        description="Conversations of the Platform API v4: shoppers' questions about products.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser(
        "serve",
        parents=[database],
        help="run the gRPC server",
        description="Apply pending migrations and serve ConversationService, health and "
        "reflection over gRPC, and REST through Envoy's gRPC-JSON transcoder, until SIGTERM "
        "or SIGINT. On a fresh embedded database the demo organisation D10 (en-GB) is created.",
    )
    _option(serve_parser, "grpc-address", DEFAULT_GRPC_ADDRESS, "HOST:PORT to listen on for gRPC")
    _option(serve_parser, "http-address", DEFAULT_HTTP_ADDRESS, "HOST:PORT for REST through Envoy")
    _switch(serve_parser, "rest", "serve gRPC only, without starting Envoy")
    _option(serve_parser, "envoy-workers", Config.envoy_workers, "Envoy worker threads")
    _option(serve_parser, "workers", Config.workers, "threads reading the database for calls")
    _option(
        serve_parser,
        "max-concurrent-calls",
        Config.max_concurrent_calls,
        "calls served at once; more are refused with RESOURCE_EXHAUSTED (0: no limit)",
    )
    _option(
        serve_parser,
        "grace-period",
        Config.grace_period,
        "seconds in-flight calls get to finish on shutdown",
    )
    _option(
        serve_parser,
        "drain-delay",
        Config.drain_delay,
        "seconds to go on serving after SIGTERM while health reports NOT_SERVING, for a load "
        "balancer to stop sending calls (2 behind `proxy`)",
    )
    _option(
        serve_parser,
        "sqlite-synchronous",
        Config.sqlite_synchronous,
        "SQLite durability: FULL survives power loss, NORMAL only a crash of the process",
        choices=["FULL", "NORMAL"],
    )
    _option(
        serve_parser,
        "database-timeout",
        Config.database_timeout,
        "seconds a call may wait on the database (a connection, a lock, a query) before it "
        "fails with UNAVAILABLE",
    )
    _option(
        serve_parser,
        "metrics-address",
        None,
        "serve Prometheus metrics at http://HOST:PORT/metrics (HOST 127.0.0.1 when left out; "
        "off when not given)",
        metavar="[HOST:]PORT",
    )
    _option(
        serve_parser,
        "max-request-bytes",
        Config.max_request_bytes,
        "largest request (gRPC message or REST body); larger ones get RESOURCE_EXHAUSTED, HTTP 413",
    )
    _option(
        serve_parser,
        "rate-limit",
        Config.rate_limit,
        "calls per second per API key and process, 0 for no limit; over it: "
        "RESOURCE_EXHAUSTED, HTTP 429",
    )
    _option(
        serve_parser, "rate-burst", Config.rate_burst, "calls a key may make at once above its rate"
    )
    _switch(serve_parser, "reflection", "turn server reflection off")
    _option(
        serve_parser,
        "tls-cert",
        None,
        "PEM certificate (chain) of the gRPC port: serve gRPC over TLS",
        type=Path,
    )
    _option(serve_parser, "tls-key", None, "PEM private key of --tls-cert", type=Path)
    _option(
        serve_parser,
        "tls-client-ca",
        None,
        "PEM CA certificates: require client certificates they signed (mutual TLS)",
        type=Path,
    )

    proxy_parser = commands.add_parser(
        "proxy",
        help="run Envoy in front of several `serve --no-rest` replicas",
        description="Serve REST (and gRPC) through Envoy's gRPC-JSON transcoder, balanced "
        "round-robin over the replicas given by --upstream, until SIGTERM or SIGINT; then "
        "stop taking connections and finish the requests in flight.",
    )
    proxy_parser.add_argument(
        "--upstream",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="gRPC address of a replica; repeat for each",
    )
    _option(proxy_parser, "http-address", DEFAULT_HTTP_ADDRESS, "HOST:PORT to listen on")
    proxy_parser.add_argument(
        "--admin-address",
        default="127.0.0.1:0",
        help="HOST:PORT of Envoy's admin interface (default %(default)s: a free port)",
    )
    _option(proxy_parser, "envoy-workers", Config.envoy_workers, "Envoy worker threads")
    _option(
        proxy_parser,
        "grace-period",
        Config.grace_period,
        "seconds requests in flight get to finish on shutdown",
    )
    _option(
        proxy_parser,
        "max-request-bytes",
        Config.max_request_bytes,
        "largest REST body; larger ones get HTTP 413",
    )

    migrate = commands.add_parser(
        "migrate",
        parents=[database],
        help="apply pending database migrations",
        description="Apply the pending schema migrations to the database.",
    )
    _option(
        migrate,
        "database-timeout",
        Config.database_timeout,
        "seconds a statement or a wait on the database may take; raise it to migrate large tables",
    )

    orgs = commands.add_parser(
        "organisations",
        help="add or list organisations",
        description="Manage the organisations (retailers) conversations are created for.",
    )
    org_commands = orgs.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = org_commands.add_parser(
        "add",
        parents=[database],
        help="add an organisation",
        description="Add an organisation, e.g. `organisations add D10 --name Demo --locale en-GB`.",
    )
    add.add_argument("trkref", help="retailer identifier, such as D10")
    add.add_argument("--name", required=True, help="the retailer's name")
    add.add_argument("--locale", required=True, help="the retailer's locale, such as en-GB")
    org_commands.add_parser(
        "list",
        parents=[database],
        help="list organisations",
        description="List the organisations, one per line: trkref, locale, name.",
    )
    keys = commands.add_parser(
        "keys",
        help="create, list or revoke API keys",
        description="Manage the API keys clients authenticate with (HTTP Basic: key id and "
        "secret). A key reaches only the organisations it is assigned to.",
    )
    key_commands = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_commands.add_parser(
        "create",
        parents=[database],
        help="create a key; its secret is shown once",
        description="Create an API key for one or more organisations and print its id and "
        "secret. The secret is stored only as a salted scrypt hash: copy it now.",
    )
    create.add_argument(
        "--organisation",
        action="append",
        required=True,
        metavar="TRKREF",
        help="an organisation the key may reach (repeat for several)",
    )
    key_commands.add_parser(
        "list",
        parents=[database],
        help="list keys",
        description="List the keys, one per line: key id, created, revoked or active, "
        "organisations.",
    )
    revoke = key_commands.add_parser(
        "revoke",
        parents=[database],
        help="revoke a key",
        description="Revoke a key: calls with it fail from now on.",
    )
    revoke.add_argument("key_id", help="the key's id, as `keys list` shows it")
    return parser


def _option(
    parser: argparse.ArgumentParser,
    flag: str,
    default: object,
    meaning: str,
    **extra: Any,
) -> None:
    """--FLAG, defaulting to the environment variable CONVERSATION_SERVICE_FLAG, then `default`."""
    env = flag.upper().replace("-", "_")
    kind = extra.pop("type", type(default) if default is not None else str)
    from_env = os.environ.get(ENV_PREFIX + env)
    parser.add_argument(
        f"--{flag}",
        type=kind,
        default=kind(from_env) if from_env else default,
        help=f"{meaning} (default %(default)s); env {ENV_PREFIX}{env}",
        **extra,
    )


def _switch(parser: argparse.ArgumentParser, feature: str, meaning: str) -> None:
    """--no-FEATURE, or CONVERSATION_SERVICE_FEATURE=off; on by default."""
    env = feature.upper()
    parser.add_argument(
        f"--no-{feature}",
        dest=feature,
        action="store_false",
        default=os.environ.get(ENV_PREFIX + env, "on") != "off",
        help=f"{meaning}; env {ENV_PREFIX}{env}=off",
    )


def _run_keys(args: argparse.Namespace) -> None:
    if args.action == "create":
        issued = api_keys.create_key(args.organisation)
        print(f"key id: {issued.key_id}")
        print(f"secret: {issued.secret}")
        print("The secret is shown only now. Use it with HTTP Basic, e.g.")
        print(f"  curl -u {issued.key_id}:SECRET ...")
    elif args.action == "list":
        for key in api_keys.list_keys():
            state = f"revoked {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if key.revoked_at else "active"
            orgs = ",".join(sorted(key.organisations))
            print(f"{key.key_id}\t{key.created_at:%Y-%m-%dT%H:%M:%SZ}\t{state}\t{orgs}")
    else:
        api_keys.revoke_key(args.key_id)
        print(f"revoked {args.key_id}")


def serve_config(args: argparse.Namespace) -> Config:
    """The Config of `serve`: each of its options is a field of Config, by the same name."""
    return Config(**{field.name: getattr(args, field.name) for field in fields(Config)})


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return _parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    configure_logging()
    if args.command == "serve":
        return serve(serve_config(args))
    if args.command == "proxy":
        return run_proxy(
            args.http_address,
            args.upstream,
            admin_address=args.admin_address,
            workers=args.envoy_workers,
            max_request_bytes=args.max_request_bytes,
            grace_period=args.grace_period,
        )
    connections.open_database(
        args.database_url, timeout=getattr(args, "database_timeout", connections.DEFAULT_TIMEOUT)
    )
    try:
        applied = connections.migrate()
        if args.command == "migrate":
            print("applied: " + ", ".join(applied) if applied else "the schema is up to date")
        elif args.command == "organisations" and args.action == "add":
            added = organisations.add_organisation(
                Organisation(trkref=args.trkref, name=args.name, locale=args.locale)
            )
            print(f"added organisation {added.trkref} ({added.locale}): {added.name}")
        elif args.command == "keys":
            _run_keys(args)
        elif args.command == "organisations":
            for org in organisations.list_organisations():
                print(f"{org.trkref}\t{org.locale}\t{org.name}")
    except DomainError as error:
        print(f"conversation-service: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
