"""idempotent messages: a customer message's client id, and which message a reply answers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'


def upgrade() -> None:
    with op.batch_alter_table('turns') as batch:
        batch.add_column(sa.Column('message_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('reply_to', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('reply', sa.JSON(), nullable=True))
    # NULLs are distinct in a unique index (SQLite and PostgreSQL): turns without an id
    # never collide; two messages of one conversation with the same id do.
    op.create_index('uq_turns_conversation_message', 'turns',
                    ['conversation_id', 'message_id'], unique=True)
    op.create_index('ix_turns_reply_to', 'turns', ['reply_to'])


def downgrade() -> None:
    op.drop_index('ix_turns_reply_to', table_name='turns')
    op.drop_index('uq_turns_conversation_message', table_name='turns')
    with op.batch_alter_table('turns') as batch:
        batch.drop_column('reply')
        batch.drop_column('reply_to')
        batch.drop_column('message_id')
