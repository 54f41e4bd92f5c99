"""Envoy's configuration: the template of envoy.yaml.template filled in for a listener and
its gRPC upstreams (the service's own server processes, or the replicas of `proxy`)."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2
from swagger_ui_bundle import swagger_ui_path

from conversations.v4 import conversation_service_pb2 as pb
from server.addresses import UNIX_PREFIX, otlp_host_port, split_address
from server.api.largest import largest
from server.config import Config
from server.package_data import DESCRIPTOR_SET, DOCS_PAGE, DOCS_SCRIPT, ENVOY_TEMPLATE, OPENAPI
from server.rest.cors import cors_placeholders

# The API explorer at /docs: its page and script, Swagger UI's files (the
# swagger-ui-bundle-v2 package) and the REST API's description.
SWAGGER_UI = Path(str(swagger_ui_path))
SWAGGER_UI_FILES = ("swagger-ui.css", "swagger-ui-bundle.js")
# The service.name of Envoy's spans, which it exports to the `otlp` cluster over OTLP gRPC.
ENVOY_SERVICE_NAME = "conversation-service-envoy"
# What Envoy's span says of the request's URL (http.url): scheme, host and path, no query.
SPAN_URL = "%REQ(:SCHEME)%://%REQ(:AUTHORITY)%%PATH(NQ:ORIG_OR_PATH)%"


@dataclass(frozen=True)
class Listener:
    """What Envoy's listener serves, and how."""

    address: str
    max_request_bytes: int = Config.max_request_bytes
    request_timeout: float = Config.http_request_timeout
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Native gRPC on the service's own paths too: `proxy` is the replicas' gRPC entry.
    # `serve` has a gRPC port of its own, whose TLS this listener must not bypass.
    grpc_passthrough: bool = False
    # Origins whose pages may call the API from a browser (CORS); none by default.
    cors_origins: tuple[str, ...] = ()


BUFFER_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute"
PREVIOUS_HOSTS = (
    "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
)
GRPC_ROUTE = f"""\
              # Native gRPC clients (content-type application/grpc*), behind `proxy` only.
              - match:
                  prefix: /conversations.v4.ConversationService/
                  grpc: {{}}
                route:
                  cluster: conversations_grpc
                  timeout: 15s
                  retry_policy:   # as the REST route's
                    retry_on: connect-failure,refused-stream,reset-before-request
                    num_retries: 2
                    retry_host_predicate:
                    - name: envoy.retry_host_predicates.previous_hosts
                      typed_config: {{ "@type": {PREVIOUS_HOSTS} }}
                typed_per_filter_config:     # gRPC messages stream through unbuffered
                  envoy.filters.http.buffer:
                    "@type": {BUFFER_PER_ROUTE}
                    disabled: true
"""


def path_field_rules() -> str:
    """A Lua table of the REST methods: HTTP method, a pattern of the path, the path's fields.

    From the google.api.http annotations of ConversationService, so that every
    method's path decides its own fields (a query parameter may not name them).
    """
    rules = []
    for method in pb.DESCRIPTOR.services_by_name["ConversationService"].methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        verb = rule.WhichOneof("pattern")
        if verb is None or verb == "custom":
            continue
        template: str = getattr(rule, verb)
        names = re.findall(r"\{([a-z_][a-z0-9_.]*)(?:=[^}]*)?\}", template)
        # Literal parts with Lua's magic characters escaped; a variable is one segment.
        literals = [re.sub(r"([^\w/])", r"%\1", part) for part in re.split(r"\{[^}]*\}", template)]
        pattern = "^" + "[^/]+".join(literals) + "/?$"
        fields = set()
        for name in names:
            top = name.split(".")[0]
            field = method.input_type.fields_by_name.get(top)
            fields |= {top, field.json_name} if field is not None else {top}
        lua_fields = ", ".join(f'["{f}"] = true' for f in sorted(fields))
        rules.append(
            f'{{ method = "{verb.upper()}", pattern = "{pattern}", fields = {{ {lua_fields} }} }}'
        )
    return "{ " + ", ".join(rules) + " }"


def render_config(
    listener: Listener,
    upstreams: Sequence[str],
    *,
    admin: str | Path,
    refusal_log: Path,
    descriptor_set: Path = DESCRIPTOR_SET,
    otlp_endpoint: str | None = None,
) -> str:
    """Envoy's YAML configuration: REST on the listener, balanced over the gRPC `upstreams`;
    the admin interface on a unix socket (a Path) or on HOST:PORT; its spans exported to
    `otlp_endpoint` (OTLP gRPC, plaintext) when given."""
    listen_host, listen_port = split_address(listener.address)
    if isinstance(admin, Path):  # mode 0600 (384): only its owner may connect
        admin_address = f"{{ pipe: {{ path: {admin}, mode: 384 }} }}"
    else:
        admin_host, admin_port = split_address(admin)
        admin_address = (
            f"{{ socket_address: {{ address: {admin_host}, port_value: {admin_port} }} }}"
        )
    endpoints = [_endpoint(upstream) for upstream in upstreams]
    transport_socket = ""
    if listener.tls_cert is not None and listener.tls_key is not None:
        transport_socket = (
            "transport_socket: { name: envoy.transport_sockets.tls, typed_config: { "
            '"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.'
            "DownstreamTlsContext, common_tls_context: { alpn_protocols: [h2, http/1.1], "
            f"tls_certificates: [{{ certificate_chain: {{ filename: {listener.tls_cert} }}, "
            f"private_key: {{ filename: {listener.tls_key} }} }}] }} }} }}\n      "
        )
    return string.Template(ENVOY_TEMPLATE.read_text()).substitute(
        LISTEN_ADDRESS=listen_host,
        LISTEN_PORT=listen_port,
        TRANSPORT_SOCKET=transport_socket,
        ADMIN_ADDRESS=admin_address,
        UPSTREAM_LB_ENDPOINTS="[" + ", ".join(endpoints) + "]",
        CLUSTER_TYPE=_cluster_type(upstreams),
        DESCRIPTOR_PATH=descriptor_set,
        MAX_REQUEST_BYTES=listener.max_request_bytes,
        MAX_RESPONSE_BYTES=largest().json_bytes,
        REQUEST_TIMEOUT=f"{listener.request_timeout:g}",
        GRPC_ROUTE=GRPC_ROUTE if listener.grpc_passthrough else "",
        PATH_FIELD_RULES=path_field_rules(),
        REFUSAL_LOG=refusal_log,
        DOCS_PAGE=DOCS_PAGE,
        DOCS_SCRIPT=DOCS_SCRIPT,
        SWAGGER_UI=SWAGGER_UI,
        OPENAPI_PATH=OPENAPI,
        DOCS_MAX_BYTES=max(
            path.stat().st_size
            for path in (
                DOCS_PAGE,
                DOCS_SCRIPT,
                OPENAPI,
                *(SWAGGER_UI / name for name in SWAGGER_UI_FILES),
            )
        ),
        **_tracing(otlp_endpoint),
        **cors_placeholders(listener.cors_origins),
    )


def _endpoint(upstream: str) -> str:
    """An upstream as an Envoy endpoint: HOST:PORT, or unix:PATH (a worker of `serve`)."""
    if upstream.startswith(UNIX_PREFIX):
        address = f"{{ pipe: {{ path: {upstream.removeprefix(UNIX_PREFIX)} }} }}"
    else:
        host, port = split_address(upstream)
        address = f"{{ socket_address: {{ address: {host}, port_value: {port} }} }}"
    return f"{{ endpoint: {{ address: {address} }} }}"


def _cluster_type(upstreams: Sequence[str]) -> str:
    """How Envoy finds the upstreams: unix sockets as they are, names through DNS."""
    return "STATIC" if all(u.startswith(UNIX_PREFIX) for u in upstreams) else "STRICT_DNS"


def _tracing(otlp_endpoint: str | None) -> dict[str, str]:
    """The HTTP connection manager's tracer and the cluster it exports to, as flow YAML."""
    if otlp_endpoint is None:
        off = "# no tracing: no --otlp-endpoint"
        return {"TRACING": off, "OTLP_CLUSTER": off}
    host, port = otlp_host_port(otlp_endpoint)
    tracer = (
        "{ provider: { name: envoy.tracers.opentelemetry, typed_config: { "
        '"@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, '
        "grpc_service: { envoy_grpc: { cluster_name: otlp }, timeout: 1s }, "
        f"service_name: {ENVOY_SERVICE_NAME} }} }}, "
        # The span's URL without its query: its values (a voter_id) identify shoppers.
        f'custom_tags: [{{ tag: http.url, value: "{SPAN_URL}" }}] }}'
    )
    cluster = (
        "- { name: otlp, type: STRICT_DNS, dns_lookup_family: V4_PREFERRED, connect_timeout: 1s, "
        "typed_extension_protocol_options: { envoy.extensions.upstreams.http.v3."
        'HttpProtocolOptions: { "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.'
        "HttpProtocolOptions, "
        "explicit_http_config: { http2_protocol_options: {} } } }, "
        "load_assignment: { cluster_name: otlp, endpoints: [{ lb_endpoints: [{ endpoint: { "
        f"address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }} }}] }}] }} }}"
    )
    return {"TRACING": f"tracing: {tracer}", "OTLP_CLUSTER": cluster}
