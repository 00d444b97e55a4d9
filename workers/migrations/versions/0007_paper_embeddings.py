"""paper embeddings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:10:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('paper_embedding',
    sa.Column('arxiv_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('text_hash', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('arxiv_id', 'model')
    )


def downgrade() -> None:
    op.drop_table('paper_embedding')
