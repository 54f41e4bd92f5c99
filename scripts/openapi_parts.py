"""The fixed parts of the OpenAPI document (scripts/openapi.py builds the rest from the
contract): how scalars and well-known types are described, the enums of string fields, every
error answer and header, the probes, and the schemas of google.rpc.Status and Empty."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2

from server.service.answers import RESPONSE_TYPES
from server.service.decisions import MODERATION_TARGETS
from server.service.domain import ORDERS, PRE_MODERATION
from server.service.errors import Reason
from server.service.screening import HoldReason

FieldType = descriptor_pb2.FieldDescriptorProto

SCALARS: dict[int, dict[str, Any]] = {
    FieldType.TYPE_STRING: {"type": "string"},
    FieldType.TYPE_BOOL: {"type": "boolean"},
    FieldType.TYPE_UINT32: {
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": 2**32 - 1,
    },
    FieldType.TYPE_INT32: {"type": "integer", "format": "int32"},
}
WELL_KNOWN: dict[str, dict[str, Any]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
}
# The string fields that take one of a few values, by name, wherever they appear.
ENUMS: dict[str, list[str]] = {
    "order_by": list(ORDERS),
    "response_type": list(RESPONSE_TYPES),
    "held_for": [PRE_MODERATION, *(str(reason) for reason in HoldReason)],
    "target": list(MODERATION_TARGETS),
    "kind": list(MODERATION_TARGETS),
}
# Every error answer, as docs/api.md describes it, and the headers it carries.
ERRORS = {
    "400": "Invalid input (google.rpc.BadRequest in details), malformed JSON or unknown query "
    "parameter",
    "401": "Missing or invalid credentials (HTTP Basic: API key and secret)",
    "403": "A shopper's API key on a moderator's method (the moderation queue, decisions, "
    "their log and blocked terms)",
    "404": "Unknown organisation, conversation, answer or blocked term, one of another "
    "organisation than trkref or one the key is not assigned to, or a path or method the API "
    "does not have",
    "408": "The request was not sent whole in time (Envoy's request timeout)",
    "409": "The request_id (or Idempotency-Key) was already used for a different request, "
    "or the term is blocked already",
    "413": "Request body over the size limit",
    "429": "A limit is reached (the API key's rate, the calls at once, failed authentications "
    "from this address) or no more ids can be stored; retry after Retry-After seconds",
    "431": "Request headers over 16 KiB, or more than 100 of them",
    "500": "An error of the service (a bug, not a state to retry); the details stay in its log",
    "503": "The service or its database is unavailable; retry",
    "504": "The service did not answer within the route's timeout; retry",
}
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "The request's id, as the service's logs and traces name it.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": 'The authentication scheme to use: `Basic realm="Platform API v4"`.',
        "required": True,
        "schema": {"type": "string"},
    },
}
HEADERS.update(
    {
        "ETag": {
            "description": "The entity tag of the answer (strong; weak `W/` when the answer is "
            "compressed): send it back as If-None-Match. Absent on an organisation-wide List.",
            "schema": {"type": "string"},
        },
        "Cache-Control": {
            "description": "`private, no-cache`: a client may keep the answer, and asks again "
            "with If-None-Match before using it.",
            "schema": {"type": "string"},
        },
        "Retry-After-When-Known": {
            "description": "Seconds to wait before retrying, when the service says (absent when "
            "Envoy answers for a service it cannot reach).",
            "schema": {"type": "integer", "minimum": 0},
        },
    }
)
# The headers of each error answer beyond X-Request-Id: the header, and its description.
ERROR_HEADERS = {
    "401": {"WWW-Authenticate": "WWW-Authenticate"},
    "429": {"Retry-After": "Retry-After"},
    "503": {"Retry-After": "Retry-After-When-Known"},
}
# The errors of a request with a body only.
BODY_ERRORS = {
    "415": "The body's Content-Encoding is not gzip, br or identity",
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "Entity tags of answers the client holds (RFC 9110): when one matches, the "
    "answer is 304 Not Modified with no body.",
    "schema": {"type": "string"},
}
PROBE_SCHEMA = {
    "type": "object",
    "description": "A probe's answer.",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["ok", "SERVING", "NOT_SERVING"]}},
}


def _probe(summary: str, description: str, codes: dict[str, str]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": summary,
            "summary": summary,
            "description": description,
            "tags": ["Probes"],
            "security": [],
            "responses": {
                **{
                    code: with_headers(json_response(text, "#/components/schemas/Probe"), {})
                    for code, text in codes.items()
                },
                "431": with_headers(
                    json_response(ERRORS["431"], "#/components/schemas/Status"), {}
                ),
            },
        }
    }


def probes() -> dict[str, Any]:
    """The probes the service's Envoy answers, without a key."""
    return {
        "/healthz": _probe(
            "Liveness",
            'Liveness: 200 `{"status":"ok"}` while the REST port answers at all.',
            {"200": "Alive"},
        ),
        "/readyz": _probe(
            "Readiness",
            "Readiness, as gRPC health says: 503 while the database is down or the service drains.",
            {"200": "Ready: `SERVING`", "503": "Not ready: `NOT_SERVING`"},
        ),
    }


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The request's `request_id` (a UUID), for clients that keep it out of the "
    "body: a retry with the same key answers what the first request stored. When both are "
    "given they must be equal.",
    "schema": {"type": "string", "format": "uuid"},
}
FIELD_VIOLATION_SCHEMA = {
    "type": "object",
    "description": "google.rpc.BadRequest.FieldViolation: one invalid field.",
    "required": ["field", "description", "reason"],
    "properties": {
        "field": {"type": "string", "description": "The field, as the request names it."},
        "description": {"type": "string", "description": "What is wrong, for people."},
        "reason": {
            "type": "string",
            "enum": [reason.value for reason in Reason],
            "description": "Why, for programs (AIP-193); docs/api.md says what each means. A "
            "later version of the API may add reasons: treat an unknown one as a generic "
            "invalid field.",
        },
    },
}
STATUS_DETAIL_SCHEMA = {
    "type": "object",
    "description": "A google.protobuf.Any: `@type` names the message. A "
    "type.googleapis.com/google.rpc.BadRequest lists every invalid field in field_violations; "
    "a type.googleapis.com/google.rpc.RetryInfo, on an error worth retrying, says in "
    "retry_delay when.",
    "required": ["@type"],
    "properties": {
        "@type": {"type": "string"},
        "field_violations": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/FieldViolation"},
        },
        "retry_delay": {
            "type": "string",
            "description": "google.protobuf.Duration: seconds, e.g. `1s`.",
        },
    },
}
STATUS_SCHEMA = {
    "type": "object",
    "description": "google.rpc.Status: a gRPC status code, a message, and typed details.",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {"type": "integer", "format": "int32"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/StatusDetail"},
        },
    },
}
STATUS_REF = "#/components/schemas/Status"
# Methods returning google.protobuf.Empty (the votes) answer 202 Accepted with
# `{}` over REST: Envoy's configuration sets that status (the transcoder alone
# would answer 200).
EMPTY = ".google.protobuf.Empty"
EMPTY_SCHEMA = {
    "type": "object",
    "description": "google.protobuf.Empty: always the empty JSON object `{}`.",
    "additionalProperties": False,
}


def with_headers(response: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """A response with the header every answer has (X-Request-Id) and `headers` (each
    header's name, and the component that describes it)."""
    described = {"X-Request-Id": "X-Request-Id", **headers}
    refs = {name: {"$ref": f"#/components/headers/{ref}"} for name, ref in described.items()}
    return {**response, "headers": refs}


def json_response(description: str, ref: str) -> dict[str, Any]:
    content: dict[str, Any] = {"content": {"application/json": {"schema": {"$ref": ref}}}}
    return {"description": description, **content} if description else content
