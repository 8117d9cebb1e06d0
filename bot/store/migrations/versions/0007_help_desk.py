"""help desk: who the customer is (name, page, language), internal notes, canned replies

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 04:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from deskbot.bot.store.migrations.schema import create_table, created_at, key, text, when

revision = '0007'
down_revision = '0006'


def upgrade() -> None:
    with op.batch_alter_table('conversations') as batch:
        batch.add_column(text('customer_name', 128, nullable=True))
        batch.add_column(text('page', 512, nullable=True))
        batch.add_column(text('language', 16, nullable=True))
    create_table('conversation_notes',
        key(), text('conversation_id', 32), text('agent', 128), text('text'), created_at(),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id']),
        indexed=('conversation_id',),
    )
    create_table('canned_replies',
        key(), text('title', 128), text('text'), text('updated_by', 128),
        when('updated_at', nullable=False),
        sa.UniqueConstraint('title'),
    )


def downgrade() -> None:
    op.drop_table('canned_replies')
    op.drop_table('conversation_notes')  # with its index
    with op.batch_alter_table('conversations') as batch:
        batch.drop_column('language')
        batch.drop_column('page')
        batch.drop_column('customer_name')
