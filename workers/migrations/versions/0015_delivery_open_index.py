"""delivery: a partial index of the rows still to send, by id

A sender claims the oldest due rows (`ORDER BY id LIMIT n ... FOR UPDATE SKIP LOCKED`).
PostgreSQL read them off the primary key and filtered out every row already sent on the way,
so each claim walked the whole history before the first open row, and a day's send run got
slower claim by claim (bench/claims.py measures it). This index holds only planned and
claimed rows, in id order.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status IN ('planned', 'sending')")


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        op.create_index('ix_delivery_open', 'delivery', ['id'], unique=False, sqlite_where=OPEN)
        return
    # CONCURRENTLY: on a large ledger the build takes a while, and a plain CREATE INDEX would
    # lock out every planner and sender writing to delivery meanwhile. It cannot run in a
    # transaction: the migrations before this one commit first.
    with op.get_context().autocommit_block():
        # A build that was killed half-way leaves an invalid index behind, which would make
        # the CREATE skip it and never be used: drop it (concurrently too) and build again.
        invalid = op.get_bind().execute(sa.text(
            "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('ix_delivery_open') "
            "AND NOT indisvalid")).first()
        if invalid:
            op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_delivery_open")
        op.create_index('ix_delivery_open', 'delivery', ['id'], unique=False,
                        postgresql_where=OPEN, postgresql_concurrently=True,
                        if_not_exists=True)


def downgrade() -> None:
    op.drop_index('ix_delivery_open', table_name='delivery')
