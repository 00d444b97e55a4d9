"""mail lists: subscriber.digest and consent_event.lists

The keyword digest and the monthly issue are separate lists: subscriber.digest says whether
the reader still wants the digest (the monthly issue has subscriber.monthly). Every consent
event names the lists it was about.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs with constant defaults: SQLite does them in place, with no table
    # rebuild that could cascade into the ledger.
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest', sa.Boolean(), server_default='1',
                                      nullable=False))
    with op.batch_alter_table('consentevent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lists', sqlmodel.sql.sqltypes.AutoString(length=40),
                                      server_default='', nullable=False))


def downgrade() -> None:
    # Not through batch mode (see 0009): SQLite >= 3.35 drops in place.
    op.drop_column('consentevent', 'lists')
    op.drop_column('subscriber', 'digest')
