"""erasure record: that customer data was erased or pruned, by whom, how many rows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 01:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from deskbot.bot.store.migrations.schema import create_table, created_at, key, text

revision = '0003'
down_revision = '0002'


def upgrade() -> None:
    create_table('erasures',
        key(), text('kind', 16), text('requested_by', 160),
        sa.Column('counts', sa.JSON(), nullable=True), created_at(),
        indexed=('created_at',),
    )


def downgrade() -> None:
    op.drop_table('erasures')  # with its index
