"""delivery share key: a real column instead of a key inside the payload

Rows with the same share key render alike (equal digests, one monthly issue) and go out in
one request. The planners wrote it into the JSON payload; the sender ordered and grouped by
`payload->>'share'`, a key only the daily planner knew. Existing rows keep their key.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): SQLite does it in place, with no table rebuild
    # that could cascade into the sent-papers rows.
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('share', sqlmodel.sql.sqltypes.AutoString(length=40),
                                      nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE delivery SET share = payload->>'share' "
                   "WHERE status IN ('planned', 'sending')")
        op.execute("UPDATE delivery SET share = 'issue ' || (payload->>'issue_id') "
                   "WHERE kind = 'monthly' AND status IN ('planned', 'sending')")
    else:
        op.execute("UPDATE delivery SET share = json_extract(payload, '$.share') "
                   "WHERE status IN ('planned', 'sending')")
        op.execute("UPDATE delivery SET share = 'issue ' || json_extract(payload, '$.issue_id') "
                   "WHERE kind = 'monthly' AND status IN ('planned', 'sending')")


def downgrade() -> None:
    # Not through batch mode: on SQLite that rebuilds the table, and with foreign keys on the
    # DROP of the old one would cascade into every sent-papers row. SQLite >= 3.35 drops in place.
    op.drop_column('delivery', 'share')
