"""Server reflection that serves the contract with its comments, for grpcurl `describe`,
as grpc.reflection.v1 and grpc.reflection.v1alpha.

grpcio-reflection serializes descriptors with CopyToProto(), which drops the
source info (the comments). This pool hands it file descriptors that copy out
the FileDescriptorProtos of the descriptor set built with --include_source_info.

grpcio-reflection serves v1alpha only, which newer tools ask for after v1. The two
protocols differ only in their package: the same messages, field for field, so the
same bytes. Its servicer answers both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"


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


def v1_reflection_file() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto: v1alpha's file under the package v1, all that
    tells the two apart."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    alpha, v1 = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name, proto.package = "grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(alpha, v1)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(alpha, v1)
            method.output_type = method.output_type.replace(alpha, v1)
    return proto


class _File:
    """A FileDescriptorProto as a FileDescriptorLike."""

    def __init__(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        self._proto = proto

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        proto.CopyFrom(self._proto)


def enable_documented_reflection(
    server: grpc.aio.Server,
    service_names: tuple[str, ...],
    descriptor_set: Path,
    *extra_files: FileDescriptorLike,
) -> None:
    """Serve reflection (v1 and v1alpha) for service_names from descriptor_set (plus
    extra_files, undocumented)."""
    pool: Any = _DocumentedPool(descriptor_set, *extra_files, _File(v1_reflection_file()))
    # What reflection.enable_server_reflection() does for a grpc.aio server, which it
    # recognises by its class: `server` may be an InterceptedServer's registrar.
    names = (*service_names, reflection.SERVICE_NAME, V1_SERVICE_NAME)
    servicer = reflection.aio.ReflectionServicer(names, pool)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {"ServerReflectionInfo": v1}),)
    )
