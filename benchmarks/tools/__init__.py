"""Set-up helpers for the benchmarks: `python -m benchmarks.tools.<script> --help`."""
