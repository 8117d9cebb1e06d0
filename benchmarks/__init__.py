"""deskbot's benchmarks, one script per measured figure, run as modules from the repository root.

- `benchmarks.performance`: latency, throughput and scale (turns, load, intents, store,
  ingest, ANN index, hot swap, generators, the nightly retrain at 100k turns);
- `benchmarks.quality`: how right the answers are (intents, out of scope, retrieval,
  the learning loop over a month, grounding);
- `benchmarks.robustness`: faults under load, fuzzing, poisoned labels, prompt injection;
- `benchmarks.tools`: set-up helpers (`install_mpnet`);
- `benchmarks.common`: what the scripts share (data, results folder, servers, clients).

Each script prints one JSON object and writes its figures under `benchmarks/results/`:

    python -m benchmarks.performance.turn_latency --model DIR
"""
