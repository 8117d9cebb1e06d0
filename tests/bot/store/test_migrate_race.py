"""Replicas that start together migrate one database together: one migrates, the others
wait and find nothing left to do. Real processes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import inspect
from sqlalchemy import text as sql

from deskbot.bot.store import create_store_engine

MIGRATE = """
import sys, time
from deskbot.bot.store import create_store_engine, migrate
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
migrate(create_store_engine(sys.argv[1]))
"""


def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    start = time.time() + 3.0  # every process imported and waiting when the gun goes
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, database_url, repr(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    failed = [out for p, out in zip(procs, outputs, strict=True) if p.returncode != 0]
    assert not failed, failed[0][-2000:]
    engine = create_store_engine(database_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sql("SELECT version_num FROM alembic_version")).all()
        assert len(versions) == 1
        assert {"conversations", "turns", "agent_labels", "erasures"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
