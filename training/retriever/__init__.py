"""The FAQ retriever's encoder adapted to the project: utterance -> FAQ entry pairs, contrastive fine-tuning."""
