"""The generator's fine-tuning: LoRA adapters learnt from what agents and the FAQ answered.

- `examples`: supervised examples (recent conversation, retrieved passages, customer
  message -> reply) exported from the store and the FAQ, redacted, de-duplicated and
  split by conversation; `project` makes them for a bot project's config;
  `chat_jsonl` writes and reads them as chat-format JSONL.
- `trainer`: `GeneratorTrainer`, LoRA fine-tuning with `peft` (CPU or CUDA, resumable),
  writing an adapter version (`deskbot.bot.generation.adapters`); `args` its settings,
  `encoding` the examples as token ids (prompt masked, a batch's shared prefix run
  once), `checkpoint` the work folder's checkpoints.
- `scoring`: held-out replies scored as served, for the nightly gate.
"""
