from __future__ import annotations

from pathlib import Path

import pytest

from deskbot.bot.core.errors import DataError
from deskbot.training.data.datasets import check_trainable, load_intents
from tests.conftest import BANKING_TEST, BANKING_TRAIN


def test_banking77_loads_whole() -> None:
    train, test = load_intents(BANKING_TRAIN), load_intents(BANKING_TEST)
    assert (len(train), len(test)) == (10003, 3080)
    assert len(train.intents) == 77 and train.intents == test.intents
    assert not train.has_oos
    assert all("\n" not in t for t in train.texts)  # quoted multi-line cells become one line


def test_split_is_stratified_and_reproducible() -> None:
    data = load_intents(BANKING_TRAIN)
    a_train, a_valid = data.split(0.1, seed=4)
    _b_train, b_valid = data.split(0.1, seed=4)
    assert a_valid.texts == b_valid.texts
    assert set(a_valid.intents) == set(data.intents)
    assert len(a_train) + len(a_valid) == len(data)
    assert not set(a_train.texts) & set(a_valid.texts) - {
        t for t in data.texts if data.texts.count(t) > 1
    }


def test_few_shot_draws_n_per_intent_with_a_seed() -> None:
    data = load_intents(BANKING_TRAIN)
    ten = data.few_shot(10, seed=0)
    assert len(ten) == 770 and set(ten.counts().values()) == {10}
    assert ten.texts == data.few_shot(10, seed=0).texts != data.few_shot(10, seed=1).texts


def test_rasa_nlu_yaml(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello there\n'
        "- intent: order_status\n  examples: |\n    - where is order [NW123](order_number)\n"
        "- synonym: savings\n  examples: |\n    - pots\n",
        encoding="utf-8",
    )
    data = load_intents(path)
    assert data.texts == ("hi", "hello there", "where is order NW123")
    assert data.labels == ("greet", "greet", "order_status")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"sentence,label_x\nhi,greet\n", "expected columns 'text,category'"),
        (b"text,category\ncaf\xe9,greet\n", "not UTF-8"),
        (b"text,category\nhi,greet,extra\n", ":2: 3 columns, the header has 2"),
        (b"text,category\n,greet\n", ":2: empty text"),
        (b"text,category\nhi,\n", ":2: empty category"),
        (b"\x00\x01binary", "a binary file"),
    ],
)
def test_bad_files_get_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_intents(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_label_with_one_example_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,category\nhi,greet\nhello,greet\nbye,goodbye\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"at least 2 examples each; too few: goodbye \(1\)"):
        check_trainable(load_intents(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a: &a [*a, *a]\n", "cannot read training arguments"),  # an alias that contains itself
        (b"\xff\xfe epochs: 2\n", "cannot read training arguments"),
        (b"- 1\n- 2\n", "expected a mapping of training arguments"),
    ],
)
def test_a_bad_training_arguments_file_gets_a_clear_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    from typer.testing import CliRunner

    from deskbot.bot.cli import load_plugins

    args = tmp_path / "args.yaml"
    args.write_bytes(content)
    out = tmp_path / "model"
    result = CliRunner().invoke(
        load_plugins(),
        ["train", "intents", "--data", str(BANKING_TEST), "--out", str(out), "--args", str(args)],
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()  # nothing trained, nothing half-written


def test_out_of_scope_has_one_name_whichever_spelling_a_file_uses(tmp_path: Path) -> None:
    from deskbot.bot.core.types import OUT_OF_SCOPE
    from deskbot.training.data.datasets import OOS_LABEL, IntentDataset, as_label

    path = tmp_path / "data.csv"
    path.write_text(
        "text,category\n"
        "my card has not arrived,card_arrival\n"
        "where is my card,card_arrival\n"
        "what is the weather,oos\n"
        "tell me a joke,out_of_scope\n"
    )
    data = load_intents(path)
    assert data.labels == ("card_arrival", "card_arrival", OOS_LABEL, OOS_LABEL)
    assert data.intents == ["card_arrival"] and data.has_oos
    assert IntentDataset(("x",), (OUT_OF_SCOPE,)).labels == (OOS_LABEL,)
    assert (as_label(OUT_OF_SCOPE), as_label(OOS_LABEL), as_label("card")) == (
        OOS_LABEL,
        OOS_LABEL,
        "card",
    )
