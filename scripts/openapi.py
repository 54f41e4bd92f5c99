"""An OpenAPI 3 description of the REST API, from the contract's google.api.http annotations.

It reads the descriptor set (with source info, so the proto comments become
descriptions) and describes what Envoy's transcoder serves with this project's
print options: proto field names, fields with default values always present,
errors as google.rpc.Status.
"""

from __future__ import annotations

import json
import re
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2
from openapi_parts import (
    BODY_ERRORS,
    EMPTY,
    EMPTY_SCHEMA,
    ENUMS,
    ERROR_HEADERS,
    ERRORS,
    FIELD_VIOLATION_SCHEMA,
    HEADERS,
    IDEMPOTENCY_KEY,
    IF_NONE_MATCH,
    PROBE_SCHEMA,
    SCALARS,
    STATUS_DETAIL_SCHEMA,
    STATUS_SCHEMA,
    WELL_KNOWN,
    json_response,
    probes,
    with_headers,
)

FieldType = descriptor_pb2.FieldDescriptorProto
# Paths in SourceCodeInfo: FileDescriptorProto.message_type = 4, .service = 6,
# DescriptorProto.field = 2, ServiceDescriptorProto.method = 2.
MESSAGE, SERVICE, MEMBER = 4, 6, 2


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    found = {}
    for location in file.source_code_info.location:
        lines = [line.strip() for line in location.leading_comments.strip().splitlines()]
        if lines:
            # One line per paragraph: the comments wrap at 80 columns.
            found[tuple(location.path)] = re.sub(r"(?<!\n)\n(?!\n)", " ", "\n".join(lines))
    return found


class _Builder:
    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto]) -> None:
        self.messages: dict[str, tuple[descriptor_pb2.DescriptorProto, str]] = {}
        self.comments: dict[str, str] = {}
        # The contract's enums (Status) by name: Envoy prints their values' names.
        self.enums: dict[str, list[str]] = {}
        for file in files:
            comments = _comments(file)
            for enum in file.enum_type:
                values = [value.name for value in enum.value if value.number != 0]
                self.enums[f".{file.package}.{enum.name}"] = values
            for i, message in enumerate(file.message_type):
                name = f".{file.package}.{message.name}"
                self.messages[name] = (message, comments.get((MESSAGE, i), ""))
                for j, field in enumerate(message.field):
                    self.comments[f"{name}.{field.name}"] = comments.get(
                        (MESSAGE, i, MEMBER, j), ""
                    )
        self.schemas: dict[str, Any] = {}
        # Whether each schema describes a request (True) or a response (False).
        self.directions: dict[str, bool] = {}

    def field_schema(
        self, owner: str, field: descriptor_pb2.FieldDescriptorProto, request: bool = False
    ) -> Any:
        if field.type_name in WELL_KNOWN:
            schema = dict(WELL_KNOWN[field.type_name])
        elif field.type == FieldType.TYPE_MESSAGE:
            schema = {"$ref": self.ref(field.type_name, request=request)}
        elif field.type == FieldType.TYPE_ENUM:
            schema = {"type": "string", "enum": self.enums[field.type_name]}
        else:
            schema = _scalar(field)
        if field.label == FieldType.LABEL_REPEATED:
            schema = {"type": "array", "items": schema}
        description = self.comments[f"{owner}.{field.name}"]
        return {**schema, "description": description} if "$ref" not in schema else schema

    def ref(
        self, type_name: str, exclude: frozenset[str] = frozenset(), request: bool = False
    ) -> str:
        """The schema of a message: as Envoy prints it, or as a request body (`request`)."""
        if type_name == EMPTY:
            self.schemas["Empty"] = EMPTY_SCHEMA
            return "#/components/schemas/Empty"
        message, description = self.messages[type_name]
        key = type_name.rsplit(".", 1)[1] + ("Body" if exclude else "")
        if self.directions.setdefault(key, request) != request:
            raise ValueError(f"{type_name} is both a request and a response: name them apart")
        if key not in self.schemas:
            fields = [f for f in message.field if f.name not in exclude]
            # Envoy prints every field but the unset `optional` ones; a request
            # needs only the fields the contract marks REQUIRED.
            required = [
                f.name for f in fields if (_required(f) if request else not f.proto3_optional)
            ]
            self.schemas[key] = {
                "type": "object",
                "description": description,
                **({"required": required} if required else {}),
                "properties": {f.name: self.field_schema(type_name, f, request) for f in fields},
            }
        return f"#/components/schemas/{key}"

    def parameter(
        self, owner: str, field: descriptor_pb2.FieldDescriptorProto, where: str
    ) -> dict[str, Any]:
        """A path or query parameter: a scalar field of the request message."""
        if field.type not in SCALARS or field.label == FieldType.LABEL_REPEATED:
            raise ValueError(f"{owner}.{field.name}: only scalar fields can be {where} parameters")
        return {
            "name": field.name,
            "in": where,
            "description": self.comments[f"{owner}.{field.name}"],
            "required": where == "path" or _required(field),
            "schema": _scalar(field),
        }


def _idempotent(builder: _Builder, request: descriptor_pb2.DescriptorProto, body: str) -> bool:
    """Whether the request has a request_id: its own, or its body field's message's."""
    names = {f.name for f in request.field}
    if body and body != "*":
        [field] = [f for f in request.field if f.name == body]
        names |= {f.name for f in builder.messages[field.type_name][0].field}
    return "request_id" in names


def _scalar(field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
    """The schema of a scalar field: its type, and its values where ENUMS names them."""
    schema = dict(SCALARS[field.type])
    if field.name in ENUMS and field.type == FieldType.TYPE_STRING:
        schema["enum"] = ENUMS[field.name]
    return schema


def _required(field: descriptor_pb2.FieldDescriptorProto) -> bool:
    behaviors = field.options.Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def build(descriptor_set: bytes, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI document of every annotated method of the non-google files, and the
    probes Envoy answers."""
    files = [
        f
        for f in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
        if not f.name.startswith("google/")
    ]
    builder = _Builder(files)
    paths: dict[str, Any] = {}
    for file in files:
        comments = _comments(file)
        for s, service in enumerate(file.service):
            for m, method in enumerate(service.method):
                rule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                if verb is None or verb == "custom":
                    continue
                operation = _operation(builder, method, rule, getattr(rule, verb))
                operation["description"] = comments.get((SERVICE, s, MEMBER, m), "")
                operation["tags"] = [service.name]
                methods = paths.setdefault(getattr(rule, verb), {})
                methods[verb] = operation
                if verb == "get":
                    _conditional(operation)
                    methods["head"] = _head(operation)
    builder.schemas["Status"] = STATUS_SCHEMA
    builder.schemas["StatusDetail"] = STATUS_DETAIL_SCHEMA
    builder.schemas["FieldViolation"] = FIELD_VIOLATION_SCHEMA
    builder.schemas["Probe"] = PROBE_SCHEMA
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": version,
            "license": {"name": "Proprietary"},
        },
        "servers": [
            {
                "url": "/",
                "description": "The origin that serves this document: the REST address of "
                "`conversation-service serve` (--http-address) or of `proxy`",
            }
        ],
        "paths": {**paths, **probes()},
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "headers": HEADERS,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The API key's id as user name, its secret as password.",
                }
            },
        },
        "security": [{"apiKey": []}],
    }


def _operation(
    builder: _Builder,
    method: descriptor_pb2.MethodDescriptorProto,
    rule: http_pb2.HttpRule,
    template: str,
) -> dict[str, Any]:
    """A method's operation: its parameters as the transcoder binds them, its body, and
    every answer."""
    path_params = re.findall(r"{([^}=]+)}", template)
    request, _ = builder.messages[method.input_type]
    fields = {f.name: f for f in request.field}
    # The transcoder's binding: path variables, then the body (every other field for
    # `*`, one field otherwise), the rest as query.
    query = [
        f for f in request.field if f.name not in path_params and rule.body not in ("*", f.name)
    ]
    if method.output_type == EMPTY and rule.WhichOneof("pattern") == "post":
        result = json_response("Accepted: the empty object `{}`", builder.ref(EMPTY))
        success = {"202": with_headers(result, {})}
    elif method.output_type == EMPTY:
        result = json_response("Done: the empty object `{}`", builder.ref(EMPTY))
        success = {"200": with_headers(result, {})}
    else:
        result = json_response("The result", builder.ref(method.output_type))
        success = {"200": with_headers(result, {})}
    errors = dict(ERRORS, **(BODY_ERRORS if rule.body else {}))
    operation: dict[str, Any] = {
        "operationId": method.name,
        "summary": method.name,
        "parameters": [
            *(builder.parameter(method.input_type, fields[p], "path") for p in path_params),
            *(builder.parameter(method.input_type, f, "query") for f in query),
            # The request_id field's header form, where there is one.
            *([IDEMPOTENCY_KEY] if _idempotent(builder, request, rule.body) else []),
        ],
        "responses": {
            **success,
            **{
                code: with_headers(
                    json_response(text, "#/components/schemas/Status"), ERROR_HEADERS.get(code, {})
                )
                for code, text in sorted(errors.items())
            },
        },
    }
    if rule.body == "*":
        body_ref = builder.ref(method.input_type, frozenset(path_params), True)
        operation["requestBody"] = {"required": True, **json_response("", body_ref)}
    elif rule.body:
        body = fields[rule.body]
        body_ref = builder.ref(body.type_name, request=True)
        operation["requestBody"] = {
            "required": _required(body),
            **json_response(builder.comments[f"{method.input_type}.{body.name}"], body_ref),
        }
    return operation


def _conditional(operation: dict[str, Any]) -> None:
    """A read's conditional form: If-None-Match, ETag and Cache-Control, and its 304."""
    operation["parameters"].append(IF_NONE_MATCH)
    ok = operation["responses"]["200"]
    ok["headers"].update(
        {name: {"$ref": f"#/components/headers/{name}"} for name in ("ETag", "Cache-Control")}
    )
    operation["responses"]["304"] = {
        "description": "Not Modified: the read would answer what the If-None-Match tag "
        "names; no body",
        "headers": {
            name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Request-Id", "ETag")
        },
    }


def _head(get: dict[str, Any]) -> dict[str, Any]:
    """HEAD of a read: the GET's parameters and the headers of each of its answers, no body."""
    return {
        **{key: value for key, value in get.items() if key != "responses"},
        "operationId": f"{get['operationId']}Head",
        "summary": f"{get['summary']} (HEAD)",
        "description": "The headers the GET would answer with, and no body.",
        "responses": {
            code: {key: value for key, value in response.items() if key != "content"}
            for code, response in get["responses"].items()
        },
    }


def render(descriptor_set: bytes) -> str:
    document = build(descriptor_set, "Platform API v4: Conversations", "4")
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
