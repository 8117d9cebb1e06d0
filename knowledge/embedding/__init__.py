"""Sentence encoders on local disk: sentence-transformers, or ONNX Runtime.

Nothing is downloaded at run time (the Hugging Face hub is offline for every model
loaded here), and tokenizers do not start their own threads in a forked server.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
