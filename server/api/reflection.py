"""Server reflection that serves the contract with its comments, for grpcurl `describe`.

grpcio-reflection serializes descriptors with CopyToProto(), which drops the
source info (the comments). This pool hands it file descriptors that copy out
the FileDescriptorProtos of the descriptor set built with --include_source_info.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc


def _without_json_names(
    file: descriptor_pb2.FileDescriptorProto,
) -> descriptor_pb2.FileDescriptorProto:
    # As grpcio-reflection serves descriptors, without json_name: grpcurl then
    # prints the proto field names (first_name), as the v4 API's JSON does.
    for message in file.message_type:
        for field in message.field:
            field.ClearField("json_name")
    return file


class FileDescriptorLike(Protocol):
    """A generated module's DESCRIPTOR."""

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None: ...


class _DocumentedFile:
    def __init__(self, file: descriptor.FileDescriptor, pool: _DocumentedPool) -> None:
        self._file = file
        self._pool = pool
        self.name = file.name

    @property
    def dependencies(self) -> list[_DocumentedFile]:
        return [_DocumentedFile(d, self._pool) for d in self._file.dependencies]

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        documented = self._pool.documented.get(self.name)
        if documented is None:
            self._file.CopyToProto(proto)
        else:
            proto.CopyFrom(documented)


class _DocumentedPool:
    """A DescriptorPool whose file lookups carry the comments of the descriptor set."""

    def __init__(self, descriptor_set: Path, *extra: FileDescriptorLike) -> None:
        contract = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
        # Comments of the contract's own files only: those of the imported
        # google/* files would only make every reflection answer larger.
        self.documented = {
            file.name: _without_json_names(file)
            for file in contract.file
            if not file.name.startswith("google/")
        }
        self._pool = descriptor_pool.DescriptorPool()
        for file in contract.file:
            self._pool.Add(file)
        for module_file in extra:
            proto = descriptor_pb2.FileDescriptorProto()
            module_file.CopyToProto(proto)
            self._pool.Add(proto)

    def FindFileByName(self, name: str) -> _DocumentedFile:
        return _DocumentedFile(self._pool.FindFileByName(name), self)

    def FindFileContainingSymbol(self, symbol: str) -> _DocumentedFile:
        return _DocumentedFile(self._pool.FindFileContainingSymbol(symbol), self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def enable_documented_reflection(
    server: grpc.aio.Server,
    service_names: tuple[str, ...],
    descriptor_set: Path,
    *extra_files: FileDescriptorLike,
) -> None:
    """Serve reflection for service_names from descriptor_set (plus extra_files, undocumented)."""
    pool: Any = _DocumentedPool(descriptor_set, *extra_files)
    # What reflection.enable_server_reflection() does for a grpc.aio server, which it
    # recognises by its class: `server` may be an InterceptedServer's registrar.
    servicer = reflection.aio.ReflectionServicer((*service_names, reflection.SERVICE_NAME), pool)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
