"""Attacks on the agent console: `python -m benchmarks.security.<script> --help`."""
