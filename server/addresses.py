"""Network addresses as the options write them: HOST:PORT, [IPV6]:PORT, unix:PATH."""

from __future__ import annotations

# An address on a unix socket: unix:PATH, as grpc writes it.
UNIX_PREFIX = "unix:"
# A wildcard host, and the loopback host of its family that reaches a server bound to it.
LOOPBACK_OF_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def split_address(address: str, default_host: str | None = None) -> tuple[str, int]:
    """'HOST:PORT' as (host, port), brackets taken off an IPv6 host. With `default_host`,
    the host may be left out ('PORT' or ':PORT')."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host and default_host is not None:
        host = default_host
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host, int(port)


def join_address(host: str, port: int) -> str:
    """(host, port) as 'HOST:PORT', an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reachable_address(address: str) -> str:
    """Where this machine reaches a server listening on `address`: a wildcard host
    (0.0.0.0, [::]) becomes the loopback host of its family. Any other (unix:PATH) is
    returned as it is."""
    try:
        host, port = split_address(address)
    except ValueError:
        return address
    return join_address(LOOPBACK_OF_WILDCARD.get(host, host), port)


def otlp_host_port(endpoint: str) -> tuple[str, int]:
    """(host, port) of an OTLP gRPC endpoint: HOST:PORT or http://HOST:PORT."""
    scheme, _, rest = endpoint.rpartition("://")
    if scheme not in ("", "http"):
        raise ValueError(f"OTLP endpoint {endpoint!r}: only plaintext (http://) is supported")
    return split_address(rest.rstrip("/"))
