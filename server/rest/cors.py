"""CORS for the REST port (--cors-origin): the virtual host's policy and Envoy's cors filter.

Off unless origins are given: then no filter is configured and no response
carries an Access-Control-* header.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# What a page on an allowed origin may send and read: the methods (a moderator's page
# unblocks a term with DELETE), the key (Authorization), the create's Idempotency-Key, a JSON
# body, a conditional read's If-None-Match and its own request id; the headers the API
# answers with.
ALLOW_METHODS = "GET, POST, HEAD, DELETE"
ALLOW_HEADERS = "authorization, idempotency-key, content-type, if-none-match, x-request-id"
EXPOSE_HEADERS = "etag, retry-after, x-request-id, www-authenticate"
# Seconds a browser may keep a preflight's answer.
MAX_AGE = 600

CORS_FILTER = (
    '- { name: envoy.filters.http.cors, typed_config: { "@type": '
    "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors } }"
)
CORS_POLICY = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
# Where the template places the virtual host's fields.
VHOST_INDENT = " " * 14


def cors_placeholders(origins: Sequence[str]) -> dict[str, str]:
    """CORS_POLICY (of the virtual host) and CORS_FILTER as flow YAML, or comments."""
    if not origins:
        off = "# no CORS: no --cors-origin"
        return {"CORS_POLICY": off, "CORS_FILTER": off}
    # JSON strings are YAML flow scalars: an origin is quoted as it is.
    matches = ", ".join(f"{{ exact: {json.dumps(origin)} }}" for origin in origins)
    policy = (
        "typed_per_filter_config: { envoy.filters.http.cors: { "
        f'"@type": {CORS_POLICY}, allow_origin_string_match: [{matches}], '
        f'allow_methods: "{ALLOW_METHODS}", allow_headers: "{ALLOW_HEADERS}", '
        f'expose_headers: "{EXPOSE_HEADERS}", max_age: "{MAX_AGE}" }} }}'
    )
    # The answer names the caller's origin: a cache keeps one per Origin.
    vary = (
        "response_headers_to_add: [{ header: { key: vary, value: Origin }, "
        "append_action: APPEND_IF_EXISTS_OR_ADD }]"
    )
    return {"CORS_POLICY": f"{policy}\n{VHOST_INDENT}{vary}", "CORS_FILTER": CORS_FILTER}
