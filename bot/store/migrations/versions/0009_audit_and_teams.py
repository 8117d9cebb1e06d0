"""agent accounts: the audit log, and teams with their own queues

Every existing agent joins the default team "general", where every existing handoff
waits: a one-queue desk works as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:30:00
"""
from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from deskbot.bot.store.migrations.schema import create_table, key, text, when

revision = '0009'
down_revision = '0008'


def upgrade() -> None:
    create_table('audit_events',
        key(), when('at', nullable=False), text('actor', 160, nullable=True),
        text('action', 48), text('object_type', 32, nullable=True),
        text('object_id', 128, nullable=True), text('conversation_id', 32, nullable=True),
        text('address', 64, nullable=True), text('detail', 256, nullable=True),
        indexed=('at', 'actor', 'action', 'conversation_id'),
    )
    create_table('teams', text('name', 64), when('created_at', nullable=False), primary_key='name')
    op.create_table('agent_teams',
        text('username', 128), text('team', 64),
        sa.ForeignKeyConstraint(['username'], ['agents.username']),
        sa.ForeignKeyConstraint(['team'], ['teams.name']),
        sa.PrimaryKeyConstraint('username', 'team'),
    )
    with op.batch_alter_table('handoffs') as batch:
        batch.add_column(
            sa.Column('team', AutoString(length=64), nullable=False, server_default='general')
        )
        batch.create_index(batch.f('ix_handoffs_team'), ['team'], unique=False)
    teams = sa.table('teams', sa.column('name', AutoString()), sa.column('created_at', UTCDateTime()))
    op.bulk_insert(teams, [{'name': 'general', 'created_at': datetime.now(UTC)}])
    op.execute("INSERT INTO agent_teams (username, team) SELECT username, 'general' FROM agents")


def downgrade() -> None:
    with op.batch_alter_table('handoffs') as batch:
        batch.drop_index(batch.f('ix_handoffs_team'))
        batch.drop_column('team')
    op.drop_table('agent_teams')
    op.drop_table('teams')
    op.drop_table('audit_events')  # with its indexes
