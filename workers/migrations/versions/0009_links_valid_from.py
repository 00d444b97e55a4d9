"""links valid from: "sign out other links" on the manage page

Manage and confirmation links signed before subscriber.links_valid_from are refused (the
reader is offered a fresh link by email); unsubscribe links are not affected.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): SQLite does it in place, with no table rebuild
    # that could cascade into the ledger.
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('links_valid_from', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))


def downgrade() -> None:
    # Not through batch mode: on SQLite that rebuilds the table, and with foreign keys on the
    # DROP of the old one would cascade into every ledger row. SQLite >= 3.35 drops in place.
    op.drop_column('subscriber', 'links_valid_from')
