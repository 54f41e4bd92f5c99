"""Use cases: plain functions over plain values that raise domain errors; no gRPC, no SQL."""
