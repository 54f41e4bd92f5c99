"""The command line's options become the one Config object, from flags or the environment."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest

from server import app
from server.cli import parse
from server.config import Config
from server.processes import workers


def serve_config(argv: Sequence[str]) -> Config:
    """The Config `serve` would run with, for this command line (nothing is served)."""
    return serve_call(argv)[0]


def serve_call(argv: Sequence[str]) -> tuple[Config, int]:
    """The Config `serve` would run with and its number of server processes (nothing is
    served): one runs in the process itself (app.serve), more under server.processes.workers."""
    args = parse(argv)
    calls: list[tuple[Config, int]] = []

    def serving(config: Config, count: int = 1) -> int:
        calls.append((config, count))
        return 0

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app, "serve", serving)
        patch.setattr(workers, "serve", serving)
        assert args.run(args) == 0
    [call] = calls
    return call


def test_serve_defaults_are_the_configs() -> None:
    assert serve_config(["serve"]) == Config()


def test_every_serve_flag_reaches_the_config() -> None:
    config = serve_config(
        [
            "serve",
            "--grpc-address", "0.0.0.0:6000",
            "--no-rest",
            "--workers", "8",
            "--rate-limit", "0.5",
            "--sqlite-synchronous", "NORMAL",
            "--tls-cert", "server.pem",
            "--no-reflection",
            "--metrics-address", "9464",
        ]
    )  # fmt: skip
    assert (config.grpc_address, config.rest, config.workers) == ("0.0.0.0:6000", False, 8)
    assert (config.rate_limit, config.sqlite_synchronous) == (0.5, "NORMAL")
    assert (config.tls_cert, config.reflection, config.metrics_address) == (
        Path("server.pem"),
        False,
        "9464",
    )


def test_environment_variables_stand_for_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVERSATION_SERVICE_DATABASE_URL", "postgresql://db/conversations")
    monkeypatch.setenv("CONVERSATION_SERVICE_MAX_REQUEST_BYTES", "1024")
    monkeypatch.setenv("CONVERSATION_SERVICE_REST", "off")
    monkeypatch.setenv("CONVERSATION_SERVICE_TLS_CLIENT_CA", "clients.pem")
    config = serve_config(["serve", "--max-request-bytes", "2048"])
    assert config.database_url == "postgresql://db/conversations"
    assert config.max_request_bytes == 2048  # a flag wins over the environment
    assert config.rest is False
    assert config.tls_client_ca == Path("clients.pem")


def test_a_malformed_value_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse(["serve", "--workers", "many"])


def test_cors_origins_are_none_by_default_and_each_repeat_adds_one() -> None:
    argv = ["serve", "--cors-origin", "https://shop.example", "--cors-origin", "http://a.test:81"]

    assert serve_config(["serve"]).cors_origin == ()
    assert serve_config(argv).cors_origin == ("https://shop.example", "http://a.test:81")


def test_cors_origins_of_the_environment_are_replaced_by_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVERSATION_SERVICE_CORS_ORIGIN", "https://a.example https://b.example")

    from_environment = serve_config(["serve"]).cors_origin
    given = serve_config(["serve", "--cors-origin", "https://c.example"]).cors_origin

    assert from_environment == ("https://a.example", "https://b.example")
    assert given == ("https://c.example",)


@pytest.mark.parametrize(
    "origin", ["*", "shop.example", "https://shop.example/", "https://shop.example/page", "ftp://x"]
)
def test_a_cors_origin_that_is_not_an_origin_is_refused(origin: str) -> None:
    with pytest.raises(SystemExit):
        parse(["serve", "--cors-origin", origin])


def test_proxy_takes_cors_origins() -> None:
    args = parse(["proxy", "--upstream", "127.0.0.1:1", "--cors-origin", "https://shop.example"])

    assert args.cors_origin == ("https://shop.example",)


def test_one_process_by_default_on_sqlite_and_one_per_core_on_postgres() -> None:
    assert serve_call(["serve"])[1] == 1
    postgres = ["serve", "--database-url", "postgresql://db/conversations"]
    assert serve_call(postgres)[1] == len(os.sched_getaffinity(0))


def test_processes_given_are_the_processes_run() -> None:
    config, count = serve_call(["serve", "--processes", "3"])
    assert (config.processes, count) == (3, 3)
    postgres = ["serve", "--database-url", "postgresql://db/conversations", "--processes", "1"]
    assert serve_call(postgres)[1] == 1


@pytest.mark.parametrize("option", ["--processes", "--read-cache-mib"])
def test_a_negative_count_is_refused(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["serve", option, "-1"])
    assert args.run(args) == 2
    assert f"{option} must be 0 or more" in capsys.readouterr().err


def test_the_read_cache_size_given_is_the_one_served() -> None:
    config, _ = serve_call(["serve", "--read-cache-mib", "0"])
    assert config.read_cache_mib == 0


def test_health_exits_1_and_says_why_when_nothing_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    # The command alone: main() would also set up the process's logging, for every later test.
    args = parse(["health", "--grpc-address", f"0.0.0.0:{port}", "--timeout", "2"])
    assert args.run(args) == 1
    said = capsys.readouterr().err
    assert said.startswith(f"127.0.0.1:{port}: UNAVAILABLE: "), said
