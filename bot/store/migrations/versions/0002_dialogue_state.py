"""dialogue state per conversation (slots, active form, fallback counters)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 22:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from deskbot.bot.store.migrations.schema import create_table, text, when

revision = '0002'
down_revision = '0001'


def upgrade() -> None:
    create_table('dialogue_states',
        text('conversation_id', 32), sa.Column('state', sa.JSON(), nullable=True),
        when('updated_at', nullable=False),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id']),
        primary_key='conversation_id',
    )


def downgrade() -> None:
    op.drop_table('dialogue_states')
