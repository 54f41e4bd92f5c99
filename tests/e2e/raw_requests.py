"""Requests as a hostile client writes them, bytes on a socket: header values that grpc's and
http.client's own checks would refuse to send (a newline, ESC)."""

from __future__ import annotations

import socket
import struct
import time

# HTTP/2 frame types and flags (RFC 9113).
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    head = struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream)
    return head + payload


def _hpack_length(length: int) -> bytes:
    """An HPACK integer with a 7-bit prefix, the Huffman bit clear (RFC 7541, 5.1)."""
    if length < 127:
        return bytes([length])
    encoded, length = bytearray([127]), length - 127
    while length >= 128:
        encoded.append(length % 128 + 128)
        length //= 128
    return bytes(encoded + bytearray([length]))


def grpc_call(address: str, method: str, metadata: list[tuple[str, str]]) -> bytes:
    """One unary gRPC call with an empty request message and `metadata` as given, over
    plaintext HTTP/2 to HOST:PORT; the bytes of the frames answered, once the call ends."""
    host, _, port = address.rpartition(":")
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", address),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *metadata,
    ]
    # Each header a literal without indexing, its name new (RFC 7541, 6.2.2).
    block = b"".join(b"\x00" + _literal(name, value) for name, value in headers)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            PREFACE
            + _frame(SETTINGS, 0, 0, b"")
            + _frame(HEADERS, END_HEADERS, 1, block)
            + _frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x00")  # an empty message
        )
        return _read_until_stream_ends(sock)


def _literal(name: str, value: str) -> bytes:
    encoded_name, encoded_value = name.encode("latin-1"), value.encode("latin-1")
    return (
        _hpack_length(len(encoded_name))
        + encoded_name
        + _hpack_length(len(encoded_value))
        + encoded_value
    )


def _read_until_stream_ends(sock: socket.socket, timeout: float = 10) -> bytes:
    received, buffer = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
        buffer += chunk
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                break
            kind, flags = buffer[3], buffer[4]
            stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
            del buffer[: 9 + length]
            if kind == SETTINGS and not flags & ACK:
                sock.sendall(_frame(SETTINGS, ACK, 0, b""))
            if kind == GOAWAY or (
                stream == 1 and (kind == RST_STREAM or (kind == HEADERS and flags & END_STREAM))
            ):
                return bytes(received)
    return bytes(received)


def http1_get(address: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """GET `path` over HTTP/1.1 with `headers` written as they are; the status and the
    response's headers (names in lower case)."""
    host, _, port = address.rpartition(":")
    lines = [f"GET {path} HTTP/1.1", f"Host: {address}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        response = bytearray()
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in response and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    head = bytes(response).split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    fields = dict(line.split(":", 1) for line in head[1:] if ":" in line)
    return status, {name.lower(): value.strip() for name, value in fields.items()}
