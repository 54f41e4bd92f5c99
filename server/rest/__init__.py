"""REST: Envoy's gRPC-JSON transcoder, its configuration and its supervision as a child process."""
