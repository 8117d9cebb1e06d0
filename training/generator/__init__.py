"""The generator's fine-tuning: LoRA adapters learnt from what agents and the FAQ answered.

- `examples`: supervised examples (recent conversation, retrieved passages, customer
  message -> reply) exported from the store and the FAQ, redacted, de-duplicated and
  split by conversation, written as chat-format JSONL.
- `trainer`: `GeneratorTrainer`, LoRA fine-tuning with `peft` (CPU or CUDA, resumable),
  writing an adapter version (`deskbot.bot.generation.adapters`).
"""
