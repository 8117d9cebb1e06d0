"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 21:50:54.446549
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from deskbot.bot.store.migrations.schema import (
    create_model_versions,
    create_table,
    created_at,
    key,
    text,
    when,
)

revision = '0001'
down_revision = None


def _conversation_id() -> list[sa.Column | sa.Constraint]:
    return [
        text('conversation_id', 32),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id']),
    ]


def upgrade() -> None:
    create_table('agents',
        text('username', 128), text('display_name', 128), text('password_hash', 256),
        text('role', 16), created_at(),
        primary_key='username',
    )
    create_table('conversations',
        text('id', 32), text('token_hash', 64), text('customer_id', 128, nullable=True),
        text('channel', 32), text('status', 16), created_at(), when('updated_at', nullable=False),
        indexed=('created_at', 'customer_id', 'status', 'token_hash'),
    )
    create_model_versions()
    create_table('handoffs',
        key(), *_conversation_id(), text('reason', 64), text('status', 16),
        text('intent', 128, nullable=True), text('claimed_by', 128, nullable=True),
        created_at(), when('claimed_at'), when('resolved_at'),
        indexed=('conversation_id', 'status'),
    )
    create_table('turns',
        key(), *_conversation_id(), sa.Column('seq', sa.Integer(), nullable=False),
        text('role', 16), text('text'), text('author', 128, nullable=True),
        text('intent', 128, nullable=True), sa.Column('confidence', sa.Float(), nullable=True),
        text('kind', 32, nullable=True),
        *(sa.Column(name, sa.JSON(), nullable=True)
          for name in ('passages', 'model_versions', 'latency_ms')),
        sa.Column('feedback', sa.Integer(), nullable=True), created_at(),
        sa.UniqueConstraint('conversation_id', 'seq', name='uq_turns_conversation_seq'),
        indexed=('conversation_id', 'created_at', 'intent'),
    )
    create_table('agent_labels',
        key(), sa.Column('turn_id', sa.Integer(), nullable=False), text('agent', 128),
        text('intent', 128, nullable=True), sa.Column('answer_wrong', sa.Boolean(), nullable=False),
        text('correct_answer', nullable=True), text('note', nullable=True), created_at(),
        sa.ForeignKeyConstraint(['turn_id'], ['turns.id']),
        indexed=('turn_id',),
    )


def downgrade() -> None:
    # A table's indexes go with it.
    for table in ('agent_labels', 'turns', 'handoffs', 'model_versions', 'conversations', 'agents'):
        op.drop_table(table)
