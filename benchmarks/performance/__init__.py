"""Latency, throughput and scale: `python -m benchmarks.performance.<script> --help`."""
