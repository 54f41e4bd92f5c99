"""OpenTelemetry traces: a span per gRPC call and per database wait, exported over OTLP.

Off unless `--otlp-endpoint` is given; then nothing of OpenTelemetry is installed
on the server and calls pay nothing for it. When on, the OpenTelemetry SDK
exports in batches from a thread of its own (BatchSpanProcessor), and the standard
OTEL_* environment variables apply (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from server.api.observers import NO_TRACE
from server.config import Config
from server.rest.envoy import otlp_host_port

DEFAULT_SERVICE_NAME = "conversation-service"
# Health checks come every second from every load balancer: not worth a trace each.
HEALTH_SERVICE = "grpc.health.v1.Health"


@dataclass
class Tracing:
    """The tracer provider of a serving process, exporting to its OTLP endpoint."""

    provider: TracerProvider

    def tracer(self, name: str) -> trace.Tracer:
        return self.provider.get_tracer(name)

    def server_interceptor(self) -> grpc.aio.ServerInterceptor:
        """A span per call (W3C `traceparent` metadata continued; health checks left out).
        It goes first: the service's interceptors run inside the span, and one of them
        (SpanAttributesInterceptor) names the call's organisation on it."""
        spans: grpc.aio.ServerInterceptor = aio_server_interceptor(
            tracer_provider=self.provider,
            filter_=filters.negate(filters.service_name(HEALTH_SERVICE)),
        )
        return spans

    def shutdown(self) -> None:
        """Export the spans still waiting, then stop."""
        self.provider.shutdown()


def start_tracing(config: Config) -> Tracing | None:
    """The process's tracing when config.otlp_endpoint is set, else None."""
    if config.otlp_endpoint is None:
        return None
    host, port = otlp_host_port(config.otlp_endpoint)
    provider = TracerProvider(resource=_resource())
    exporter = OTLPSpanExporter(endpoint=f"http://{host}:{port}", insecure=True)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)


def _resource() -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, with this service's name by default."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def current_trace_id(metadata: dict[str, str]) -> str | None:
    """The trace id of the current span (the call's, when it runs in one)."""
    trace_id = f"{trace.get_current_span().get_span_context().trace_id:032x}"
    return None if trace_id == NO_TRACE else trace_id
