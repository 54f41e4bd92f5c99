"""The ceiling: a bare grpc.aio server answering the standard Health service, nothing else.

The same grpcio and the same event loop (uvloop) as the service, with no
interceptors, no server options and no other service: what a gRPC call costs in
this process before any of the service's own work. The bench measures its
Health/Check with the same h2load command as the service's.
Run: `python -m bench.ceiling HOST PORT`.
"""

from __future__ import annotations

import sys

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


async def serve(address: str) -> None:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    host, port = sys.argv[1:3]
    uvloop.run(serve(f"{host}:{port}"))


if __name__ == "__main__":
    main()
