"""What the migrations share: the column and table shapes autogenerate spells out in full.

A migration that has shipped must keep creating the schema it did: change nothing
here that a migration uses (a test compares the migrated schema with the models); add
a new helper instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

__all__ = ["create_model_versions", "create_table", "created_at", "key", "text", "when"]


def text(name: str, length: int | None = None, *, nullable: bool = False) -> sa.Column[str]:
    """A string column (`AutoString`, of `length` characters at most if given)."""
    return sa.Column(name, AutoString(length=length), nullable=nullable)


def when(name: str, *, nullable: bool = True) -> sa.Column[sa.DateTime]:
    """A timestamp column, stored in UTC."""
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def created_at() -> sa.Column[sa.DateTime]:
    return when("created_at", nullable=False)


def key(name: str = "id") -> sa.Column[int]:
    """An integer primary key column (the constraint is `create_table`'s `primary_key`)."""
    return sa.Column(name, sa.Integer(), nullable=False)


def create_table(
    name: str,
    *elements: sa.Column[object] | sa.Constraint,
    primary_key: str = "id",
    indexed: Sequence[str] = (),
) -> None:
    """Create table `name` with `elements` and a non-unique index `ix_<name>_<column>`
    on each of the `indexed` columns."""
    op.create_table(name, *elements, sa.PrimaryKeyConstraint(primary_key))
    if indexed:
        with op.batch_alter_table(name, schema=None) as batch_op:
            for column in indexed:
                batch_op.create_index(batch_op.f(f"ix_{name}_{column}"), [column], unique=False)


def create_model_versions() -> None:
    """The `model_versions` table of revision 0001 (dropped, never used, in 0004)."""
    create_table(
        "model_versions",
        key(),
        text("kind", 32),
        text("version", 64),
        text("path"),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("live", sa.Boolean(), nullable=False),
        created_at(),
        indexed=("kind",),
    )
