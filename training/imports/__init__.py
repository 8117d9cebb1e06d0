"""Past conversations read into the store: JSONL, CSV and vendors\x27 export shapes."""
