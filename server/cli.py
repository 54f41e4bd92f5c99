"""The `conversation-service` command line: a function per command, the parser built from them."""

from __future__ import annotations

import argparse
import os
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server import app, workers
from server.config import Config
from server.logs import configure_logging
from server.rest import envoy
from server.service import api_keys, blocked_terms, organisations
from server.service.domain import POLICIES, ROLES, Organisation
from server.service.errors import DomainError
from server.signals import stop_requested
from server.storage.store import Store

ENV_PREFIX = "CONVERSATION_SERVICE_"

Command = Callable[[argparse.Namespace], int]


def serve(args: argparse.Namespace) -> int:
    """Apply pending migrations and serve ConversationService, health and reflection over gRPC,
    and REST through Envoy's gRPC-JSON transcoder, until SIGTERM or SIGINT. With --demo, on
    a database without organisations, the demo organisation D10 (en-GB) and its key
    demo:demo-secret are created."""
    config = Config(**{f.name: getattr(args, f.name) for f in fields(Config)})
    for name, value in (
        ("processes", config.processes),
        ("read-cache-mib", config.read_cache_mib),
    ):
        if value < 0:
            print(f"conversation-service: --{name} must be 0 or more", file=sys.stderr)
            return 2
    count = config.process_count()
    return app.serve(config) if count == 1 else workers.serve(config, count)


def proxy(args: argparse.Namespace) -> int:
    """Serve REST (and gRPC) through Envoy's gRPC-JSON transcoder, balanced round-robin over
    the replicas given by --upstream (each a `serve --no-rest`), until SIGTERM or SIGINT; then
    stop taking connections and finish the requests in flight. Envoy is started again
    whenever it dies."""
    listener = envoy.Listener(
        args.http_address,
        max_request_bytes=args.max_request_bytes,
        request_timeout=args.http_request_timeout,
        tls_cert=args.http_tls_cert,
        tls_key=args.http_tls_key,
        grpc_passthrough=True,
        cors_origins=args.cors_origin,
    )
    return envoy.run_proxy(
        listener,
        args.upstream,
        admin_address=args.admin_address,
        workers=args.envoy_workers,
        grace_period=args.grace_period,
        otlp_endpoint=args.otlp_endpoint,
        log_level=args.log_level,
        log_format=args.log_format,
        stopping=stop_requested(),
    )


def health(args: argparse.Namespace) -> int:
    """Ask the gRPC health service of the `serve` listening on --grpc-address (plaintext) how
    it is, print the answer, and exit 0 when it is SERVING, 1 otherwise: a container's
    health check. A wildcard host (0.0.0.0, [::]) is asked on the loopback address."""
    address = args.grpc_address.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "[::1]:")
    with grpc.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=args.timeout)
        except grpc.RpcError as error:
            print(f"{address}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{address}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


def migrate(store: Store, args: argparse.Namespace) -> None:
    """Apply the pending schema migrations to the database."""
    applied = store.migrate()
    print("applied: " + ", ".join(applied) if applied else "the schema is up to date")


def organisations_add(store: Store, args: argparse.Namespace) -> None:
    """Add an organisation, e.g. `organisations add D10 --name Demo --locale en-GB`."""
    new = Organisation(
        trkref=args.trkref,
        name=args.name,
        locale=args.locale,
        moderation=args.moderation,
        report_threshold=args.report_threshold,
    )
    added = organisations.add_organisation(store, new)
    print(
        f"added organisation {added.trkref} ({added.locale}, {added.moderation}-moderated):"
        f" {added.name}"
    )


def organisations_list(store: Store, args: argparse.Namespace) -> None:
    """List the organisations, one per line: trkref, locale, moderation policy, name."""
    for org in organisations.list_organisations(store):
        print(f"{org.trkref}\t{org.locale}\t{org.moderation}\t{org.name}")


def keys_create(store: Store, args: argparse.Namespace) -> None:
    """Create an API key for one or more organisations and print its id and secret. The
    secret (256 random bits) is stored only as a keyed digest: copy it now."""
    issued = api_keys.create_key(store, args.organisation, role=args.role)
    print(f"key id: {issued.key_id}")
    print(f"secret: {issued.secret}")
    print("The secret is shown only now. Use it with HTTP Basic, e.g.")
    print(f"  curl -u {issued.key_id}:SECRET ...")


def keys_list(store: Store, args: argparse.Namespace) -> None:
    """List the keys, one per line: key id, created, revoked or active, organisations, role."""
    for key in api_keys.list_keys(store):
        state = f"revoked {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if key.revoked_at else "active"
        orgs = ",".join(sorted(key.organisations))
        print(f"{key.key_id}\t{key.created_at:%Y-%m-%dT%H:%M:%SZ}\t{state}\t{orgs}\t{key.role}")


def keys_revoke(store: Store, args: argparse.Namespace) -> None:
    """Revoke a key: calls with it fail from now on."""
    api_keys.revoke_key(store, args.key_id)
    print(f"revoked {args.key_id}")


def terms_add(store: Store, args: argparse.Namespace) -> None:
    """Block terms for an organisation: a submission holding one is held for a moderator."""
    added = blocked_terms.change_blocked_terms(store, args.trkref, args.term, add=True)
    print(f"added {added} blocked term(s) to {args.trkref}")


def terms_remove(store: Store, args: argparse.Namespace) -> None:
    removed = blocked_terms.change_blocked_terms(store, args.trkref, args.term, add=False)
    print(f"removed {removed} blocked term(s) from {args.trkref}")


def terms_list(store: Store, args: argparse.Namespace) -> None:
    """An organisation's blocked terms, one per line."""
    for term in blocked_terms.list_blocked_terms(store, args.trkref):
        print(term)


def on_database(run: Callable[[Store, argparse.Namespace], None]) -> Command:
    """A command on the migrated database of --database-url; a domain error is exit code 1."""

    def command(args: argparse.Namespace) -> int:
        store = Store.open(args.database_url, timeout=args.database_timeout)
        try:
            if run is not migrate:  # `migrate` reports what it applies
                store.migrate()
            run(store, args)
        except DomainError as error:
            print(f"conversation-service: {error}", file=sys.stderr)
            return 1
        finally:
            store.close()
        return 0

    command.__doc__ = run.__doc__
    return command


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="conversation-service",
        description="Conversations of the Platform API v4: shoppers' questions about products.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = _command(commands, "serve", "run the gRPC server (and REST)", serve)
    for config_field in fields(Config):
        _config_option(serve_parser, config_field.name)

    proxy_parser = _command(commands, "proxy", "run Envoy in front of `serve` replicas", proxy)
    proxy_parser.add_argument(
        "--upstream",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="gRPC address of a replica; repeat for each",
    )
    proxy_parser.add_argument(
        "--admin-address",
        metavar="HOST:PORT",
        help="Envoy's admin interface on HOST:PORT, which every local user can reach (default: "
        "a unix socket in a directory only this user can enter)",
    )
    for name in (
        *("http_address", "envoy_workers", "grace_period", "max_request_bytes"),
        *("http_request_timeout", "http_tls_cert", "http_tls_key", "otlp_endpoint"),
        *("log_level", "log_format"),
        "cors_origin",
    ):
        _config_option(proxy_parser, name)

    health_parser = _command(commands, "health", "check a running server's health", health)
    _config_option(health_parser, "grpc_address")
    health_parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)"
    )

    _database_command(commands, "migrate", "apply pending database migrations", migrate)
    orgs = commands.add_parser(
        "organisations",
        help="add or list organisations",
        description="Manage the organisations (retailers) conversations are created for.",
    )
    org_actions = orgs.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _database_command(org_actions, "add", "add an organisation", organisations_add)
    add.add_argument("trkref", help="retailer identifier, such as D10")
    add.add_argument("--name", required=True, help="the retailer's name")
    add.add_argument("--locale", required=True, help="the retailer's locale, such as en-GB")
    add.add_argument(
        "--moderation",
        choices=POLICIES,
        default="pre",
        help="pre: new content waits for a moderator's approval (the default); post: it is "
        "published at once unless screening holds it",
    )
    add.add_argument(
        "--report-threshold",
        type=int,
        default=3,
        metavar="N",
        help="how many shoppers' reports send a published item back to the moderation queue "
        "(default 3; 1 to 1000)",
    )
    _database_command(org_actions, "list", "list organisations", organisations_list)

    keys = commands.add_parser(
        "keys",
        help="create, list or revoke API keys",
        description="Manage the API keys clients authenticate with (HTTP Basic: key id and "
        "secret). A key reaches only the organisations it is assigned to.",
    )
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _database_command(
        key_actions, "create", "create a key; its secret is shown once", keys_create
    )
    create.add_argument(
        "--organisation",
        action="append",
        required=True,
        metavar="TRKREF",
        help="an organisation the key may reach (repeat for several)",
    )
    create.add_argument(
        "--role",
        choices=ROLES,
        default="shopper",
        help="shopper (the default): sees published content only; moderator: also reads "
        "the moderation queue and decides",
    )
    _database_command(key_actions, "list", "list keys", keys_list)
    revoke = _database_command(key_actions, "revoke", "revoke a key", keys_revoke)
    revoke.add_argument("key_id", help="the key's id, as `keys list` shows it")
    _terms_commands(commands)
    return top


def _terms_commands(commands: Any) -> None:
    terms = commands.add_parser(
        "terms",
        help="add, remove or list an organisation's blocked terms",
        description="Manage the terms screening holds a submission for (whole words, "
        "insensitive to case, accents and width), stored folded: Buy-NOW! is buy now. Every "
        "replica uses them from its next create on.",
    )
    actions = terms.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, summary, run in (
        ("add", "block terms", terms_add),
        ("remove", "unblock terms", terms_remove),
        ("list", "list the blocked terms", terms_list),
    ):
        action = _database_command(actions, name, summary, run)
        action.add_argument("trkref", help="the organisation, such as D10")
        if name != "list":
            action.add_argument("term", nargs="+", help="a term (quote one of several words)")


def _command(subparsers: Any, name: str, summary: str, run: Command) -> argparse.ArgumentParser:
    """A subcommand whose description is its function's docstring."""
    command: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=" ".join((run.__doc__ or summary).split())
    )
    command.set_defaults(run=run)
    return command


def _database_command(
    subparsers: Any, name: str, summary: str, run: Callable[[Store, argparse.Namespace], None]
) -> argparse.ArgumentParser:
    command = _command(subparsers, name, summary, on_database(run))
    _config_option(command, "database_url")
    _config_option(command, "database_timeout")
    return command


_FIELDS: dict[str, Field[Any]] = {f.name: f for f in fields(Config)}


def _config_option(parser: argparse.ArgumentParser, name: str) -> None:
    """The option of a Config field: --NAME, or the environment variable
    CONVERSATION_SERVICE_NAME, then the field's default. A boolean field is a switch:
    one on by default is turned off with --no-NAME or CONVERSATION_SERVICE_NAME=off, one
    off by default turned on with --NAME or CONVERSATION_SERVICE_NAME=on."""
    config_field = _FIELDS[name]
    flag, env = name.replace("_", "-"), ENV_PREFIX + name.upper()
    meaning: str = config_field.metadata["help"]
    kind = _option_type(name)
    if kind is bool and not config_field.default:
        parser.add_argument(
            f"--{flag}",
            dest=name,
            action="store_true",
            default=os.environ.get(env, "off") == "on",
            help=f"{meaning}; env {env}=on",
        )
        return
    if kind is bool:
        parser.add_argument(
            f"--no-{flag}",
            dest=name,
            action="store_false",
            default=os.environ.get(env, "on") != "off",
            help=f"turn off: {meaning}; env {env}=off",
        )
        return
    from_env = os.environ.get(env)
    extra = {"type": kind, **config_field.metadata["argparse"]}
    if extra.get("action") == "append":  # repeatable: the variable holds them space-separated
        parser.add_argument(
            f"--{flag}",
            default=tuple(extra["type"](value) for value in (from_env or "").split()),
            help=f"{meaning}; env {env}",
            **{**extra, "action": _Repeated},
        )
        return
    parser.add_argument(
        f"--{flag}",
        default=extra["type"](from_env) if from_env else config_field.default,
        help=f"{meaning} (default %(default)s); env {env}",
        **extra,
    )


class _Repeated(argparse.Action):
    """A repeatable option as a tuple: the values given on the command line, which replace
    those of its environment variable (the default)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        given = getattr(namespace, self.dest)
        setattr(namespace, self.dest, (*(() if given is self.default else given), values))


def _option_type(name: str) -> type:
    """The type a Config field's option parses to: its annotation, without `| None`."""
    hint = typing.get_type_hints(Config)[name]
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    kind = kinds[0]
    return Path if kind is Path else kind


def options_table() -> str:
    """`serve`'s options as a Markdown table, for docs/operations.md (a test keeps them equal)."""
    rows = ["| option | environment variable | default | meaning |", "|---|---|---|---|"]
    for config_field in fields(Config):
        name = config_field.name
        env = ENV_PREFIX + name.upper()
        if _option_type(name) is bool and not config_field.default:
            flag, env_value, default = f"--{name.replace('_', '-')}", f"{env}=on", "off"
        elif _option_type(name) is bool:
            flag, env_value, default = f"--no-{name.replace('_', '-')}", f"{env}=off", "on"
        else:
            flag, env_value = f"--{name.replace('_', '-')}", env
            off = config_field.default is None or config_field.default == ()
            default = "off" if off else str(config_field.default)
        rows.append(f"| `{flag}` | `{env_value}` | {default} | {config_field.metadata['help']} |")
    return "\n".join(rows)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    configure_logging(
        getattr(args, "log_level", Config.log_level),
        getattr(args, "log_format", Config.log_format),
    )
    run: Command = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
