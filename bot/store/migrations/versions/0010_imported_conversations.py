"""conversations: imported past conversations name their source and their id there

`deskbot import conversations` stores a team's past chats and tickets beside the live
ones: `source` is the export format, `external_id` the conversation's id in it, unique
together (importing a file twice adds nothing). Live conversations have neither.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00
"""
from __future__ import annotations

from alembic import op

from deskbot.bot.store.migrations.schema import text

revision = '0010'
down_revision = '0009'


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN and a unique index: SQLite would otherwise copy the
    # table, which its foreign keys from turns and handoffs refuse.
    with op.batch_alter_table('conversations') as batch:
        batch.add_column(text('source', 16, nullable=True))
        batch.add_column(text('external_id', 128, nullable=True))
    op.create_index(
        'uq_conversations_source_external_id', 'conversations', ['source', 'external_id'],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index('uq_conversations_source_external_id', table_name='conversations')
    with op.batch_alter_table('conversations') as batch:
        batch.drop_column('external_id')
        batch.drop_column('source')
