"""drop model_versions: the table was never read or written (the registry on disk
knows the model versions; each bot turn names the ones that answered it)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 22:00:00
"""
from __future__ import annotations

from alembic import op

from deskbot.bot.store.migrations.schema import create_model_versions

revision = '0004'
down_revision = '0003'


def upgrade() -> None:
    op.drop_table('model_versions')  # with its index


def downgrade() -> None:
    create_model_versions()
