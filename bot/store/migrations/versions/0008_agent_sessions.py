"""agent accounts: server-side console sessions, and a disabled flag on agents

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 05:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from deskbot.bot.store.migrations.schema import create_table, text, when

revision = '0008'
down_revision = '0007'


def upgrade() -> None:
    with op.batch_alter_table('agents') as batch:
        batch.add_column(
            sa.Column('disabled', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    create_table('agent_sessions',
        text('id', 64), text('username', 128), text('address', 64, nullable=True),
        when('created_at', nullable=False), when('last_seen_at', nullable=False),
        when('expires_at', nullable=False),
        sa.ForeignKeyConstraint(['username'], ['agents.username']),
        primary_key='id',
        indexed=('username',),
    )


def downgrade() -> None:
    op.drop_table('agent_sessions')  # with its index
    with op.batch_alter_table('agents') as batch:
        batch.drop_column('disabled')
