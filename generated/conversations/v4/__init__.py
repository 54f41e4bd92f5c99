"""Generated from protos/ by scripts/protos.py."""
