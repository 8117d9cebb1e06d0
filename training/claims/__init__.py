"""The claim verifier the generator's guard runs: passage/claim pairs from the FAQ, fine-tuned from the encoder."""
