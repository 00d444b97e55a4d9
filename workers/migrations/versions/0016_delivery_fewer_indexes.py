"""delivery: drop two indexes no query needs

Every claim and every outcome changes a row's status, so PostgreSQL writes a new entry into
each of the table's indexes for each row, twice in a row's life (bench/ledger_indexes.py).
Two of the six served nothing:
- `ix_delivery_subscriber_id`: `uq_delivery` (subscriber_id, kind, period) starts with the
  same column and serves every lookup by subscriber, the cascade of a deleted one included;
- `ix_delivery_next_attempt_at`: claims find due rows through `ix_delivery_open`, and no other
  query asks for rows by that time alone.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = {'ix_delivery_subscriber_id': 'subscriber_id',
           'ix_delivery_next_attempt_at': 'next_attempt_at'}


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        for name in DROPPED:
            op.drop_index(name, table_name='delivery', if_exists=True)
        return
    # CONCURRENTLY: a plain DROP INDEX waits for every transaction on the table to end while
    # holding a lock that queues every planner and sender behind it.
    with op.get_context().autocommit_block():
        for name in DROPPED:
            op.drop_index(name, table_name='delivery', postgresql_concurrently=True,
                          if_exists=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        for name, column in DROPPED.items():
            op.create_index(name, 'delivery', [column], unique=False, if_not_exists=True)
        return
    # Built CONCURRENTLY, as 0015 builds its index: a large ledger stays writable meanwhile.
    with op.get_context().autocommit_block():
        for name, column in DROPPED.items():
            # A build killed half-way leaves an invalid index that IF NOT EXISTS would keep.
            invalid = op.get_bind().execute(sa.text(
                "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(:name) "
                "AND NOT indisvalid"), {"name": name}).first()
            if invalid:
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.create_index(name, 'delivery', [column], unique=False,
                            postgresql_concurrently=True, if_not_exists=True)
