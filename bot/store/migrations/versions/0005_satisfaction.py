"""satisfaction: the customer's answer to the survey after a conversation (CSAT)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 01:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from deskbot.bot.store.migrations.schema import create_table, created_at, text

revision = '0005'
down_revision = '0004'


def upgrade() -> None:
    create_table('satisfaction',
        text('conversation_id', 32), sa.Column('score', sa.Integer(), nullable=False),
        text('comment', nullable=True), text('agent_id', 128, nullable=True),
        text('intent', 128, nullable=True), created_at(),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id']),
        primary_key='conversation_id',
        indexed=('agent_id', 'created_at', 'intent'),
    )


def downgrade() -> None:
    op.drop_table('satisfaction')  # with its indexes
