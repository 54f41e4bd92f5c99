"""The `conversation-service` command line: serve, migrate, organisations."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from server import api_keys, organisations, storage
from server.app import serve
from server.config import DEFAULT_DATABASE_URL, DEFAULT_GRPC_ADDRESS, DEFAULT_HTTP_ADDRESS, Config
from server.domain import Organisation
from server.errors import DomainError
from server.proxy import run_proxy

ENV_PREFIX = "CONVERSATION_SERVICE_"


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def _parser() -> argparse.ArgumentParser:
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-url",
        default=_env("DATABASE_URL", DEFAULT_DATABASE_URL),
        help="peewee database URL: sqlite:///PATH (embedded, the default: %(default)s) or "
        "postgresql://USER@HOST:PORT/NAME; env CONVERSATION_SERVICE_DATABASE_URL",
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
    serve_parser.add_argument(
        "--grpc-address",
        default=_env("GRPC_ADDRESS", DEFAULT_GRPC_ADDRESS),
        help="HOST:PORT to listen on for gRPC (default %(default)s); "
        "env CONVERSATION_SERVICE_GRPC_ADDRESS",
    )
    serve_parser.add_argument(
        "--http-address",
        default=_env("HTTP_ADDRESS", DEFAULT_HTTP_ADDRESS),
        help="HOST:PORT for REST through Envoy (default %(default)s); "
        "env CONVERSATION_SERVICE_HTTP_ADDRESS",
    )
    serve_parser.add_argument(
        "--no-rest",
        dest="rest",
        action="store_false",
        default=_env("REST", "on") != "off",
        help="serve gRPC only, without starting Envoy; env CONVERSATION_SERVICE_REST=off",
    )
    serve_parser.add_argument(
        "--envoy-workers",
        type=int,
        default=int(_env("ENVOY_WORKERS", str(Config.envoy_workers))),
        help="Envoy worker threads (default %(default)s); env CONVERSATION_SERVICE_ENVOY_WORKERS",
    )
    serve_parser.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", str(Config.workers))),
        help="threads serving calls (default %(default)s); env CONVERSATION_SERVICE_WORKERS",
    )
    serve_parser.add_argument(
        "--grace-period",
        type=float,
        default=float(_env("GRACE_PERIOD", str(Config.grace_period))),
        help="seconds in-flight calls get to finish on shutdown (default %(default)s)",
    )
    serve_parser.add_argument(
        "--drain-delay",
        type=float,
        default=float(_env("DRAIN_DELAY", str(Config.drain_delay))),
        help="seconds to go on serving after SIGTERM while health reports NOT_SERVING, for "
        "a load balancer to stop sending calls (default %(default)s; 2 behind `proxy`); "
        "env CONVERSATION_SERVICE_DRAIN_DELAY",
    )
    serve_parser.add_argument(
        "--sqlite-synchronous",
        choices=["FULL", "NORMAL"],
        default=_env("SQLITE_SYNCHRONOUS", Config.sqlite_synchronous),
        help="SQLite durability: FULL survives power loss, NORMAL only a crash of the "
        "process (default %(default)s); env CONVERSATION_SERVICE_SQLITE_SYNCHRONOUS",
    )
    serve_parser.add_argument(
        "--database-timeout",
        type=float,
        default=float(_env("DATABASE_TIMEOUT", str(Config.database_timeout))),
        help="seconds a call may wait on the database (a connection, a lock, a query) before "
        "it fails with UNAVAILABLE (default %(default)s); "
        "env CONVERSATION_SERVICE_DATABASE_TIMEOUT",
    )
    serve_parser.add_argument(
        "--metrics-address",
        default=_env("METRICS_ADDRESS", "") or None,
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (HOST 127.0.0.1 when left "
        "out; off by default); env CONVERSATION_SERVICE_METRICS_ADDRESS",
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
    proxy_parser.add_argument(
        "--http-address",
        default=_env("HTTP_ADDRESS", DEFAULT_HTTP_ADDRESS),
        help="HOST:PORT to listen on (default %(default)s); env CONVERSATION_SERVICE_HTTP_ADDRESS",
    )
    proxy_parser.add_argument(
        "--admin-address",
        default="127.0.0.1:0",
        help="HOST:PORT of Envoy's admin interface (default %(default)s: a free port)",
    )
    proxy_parser.add_argument(
        "--envoy-workers",
        type=int,
        default=int(_env("ENVOY_WORKERS", str(Config.envoy_workers))),
        help="Envoy worker threads (default %(default)s); env CONVERSATION_SERVICE_ENVOY_WORKERS",
    )
    proxy_parser.add_argument(
        "--grace-period",
        type=float,
        default=float(_env("GRACE_PERIOD", str(Config.grace_period))),
        help="seconds requests in flight get to finish on shutdown (default %(default)s)",
    )

    _add_access_flags(serve_parser)

    commands.add_parser(
        "migrate",
        parents=[database],
        help="apply pending database migrations",
        description="Apply the pending schema migrations to the database.",
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


def _add_access_flags(serve_parser: argparse.ArgumentParser) -> None:
    serve_parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=int(_env("MAX_REQUEST_BYTES", str(Config.max_message_bytes))),
        help="largest request (gRPC message or REST body); larger ones get RESOURCE_EXHAUSTED, "
        "HTTP 413 (default %(default)s)",
    )
    serve_parser.add_argument(
        "--rate-limit",
        type=float,
        default=float(_env("RATE_LIMIT", str(Config.rate_limit))),
        help="calls per second per API key and process, 0 for no limit (default %(default)s); "
        "over it: RESOURCE_EXHAUSTED, HTTP 429",
    )
    serve_parser.add_argument(
        "--rate-burst",
        type=float,
        default=float(_env("RATE_BURST", str(Config.rate_burst))),
        help="calls a key may make at once above its rate (default %(default)s)",
    )
    serve_parser.add_argument(
        "--no-reflection",
        dest="reflection",
        action="store_false",
        default=_env("REFLECTION", "on") != "off",
        help="turn server reflection off; env CONVERSATION_SERVICE_REFLECTION=off",
    )
    for flag, meaning in (
        ("tls-cert", "PEM certificate (chain) of the gRPC port: serve gRPC over TLS"),
        ("tls-key", "PEM private key of --tls-cert"),
        ("tls-client-ca", "PEM CA certificates: require client certificates they signed (mTLS)"),
    ):
        env = "TLS_" + flag.split("-", 1)[1].upper().replace("-", "_")
        serve_parser.add_argument(
            f"--{flag}", type=Path, default=_env(env, "") or None, help=f"{meaning}; env {env}"
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


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging()
    if args.command == "serve":
        return serve(
            Config(
                database_url=args.database_url,
                grpc_address=args.grpc_address,
                rest=args.rest,
                http_address=args.http_address,
                envoy_workers=args.envoy_workers,
                workers=args.workers,
                grace_period=args.grace_period,
                drain_delay=args.drain_delay,
                sqlite_synchronous=args.sqlite_synchronous,
                max_message_bytes=args.max_request_bytes,
                rate_limit=args.rate_limit,
                rate_burst=args.rate_burst,
                reflection=args.reflection,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                tls_client_ca=args.tls_client_ca,
                database_timeout=args.database_timeout,
                metrics_address=args.metrics_address,
            )
        )
    if args.command == "proxy":
        return run_proxy(
            args.http_address,
            args.upstream,
            admin_address=args.admin_address,
            workers=args.envoy_workers,
            max_request_bytes=Config.max_message_bytes,
            grace_period=args.grace_period,
        )
    storage.open_database(args.database_url)
    applied = storage.migrate()
    if args.command == "migrate":
        print("applied: " + ", ".join(applied) if applied else "the schema is up to date")
        return 0
    try:
        if args.command == "organisations" and args.action == "add":
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
