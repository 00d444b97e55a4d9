"""address mail: the per-address caps, kept by keyed hash so erasure does not reset them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('address_mail',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('address_mail', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_address_mail_address_key'), ['address_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_address_mail_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('address_mail', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_address_mail_created_at'))
        batch_op.drop_index(batch_op.f('ix_address_mail_address_key'))
    op.drop_table('address_mail')
