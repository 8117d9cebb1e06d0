"""Candidate intents found in customers\x27 unlabelled messages."""
