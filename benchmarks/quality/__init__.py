"""How right the bot is: `python -m benchmarks.quality.<script> --help`."""
