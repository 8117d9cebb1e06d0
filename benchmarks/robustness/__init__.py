"""Faults, fuzzing, poisoning and injection: `python -m benchmarks.robustness.<script> --help`."""
