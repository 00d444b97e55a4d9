"""delivery picks: a digest's papers kept in its ledger row instead of the sentpaper table

"Never the same paper twice" read and wrote one sentpaper row per promised paper (about nine
per digest: 930,000 rows for 100,000 digests, 40% of a day's planning). The picks now live in
the digest's own row; the planner reads those of the digests inside its ranking window.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): no table rebuild on SQLite.
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('picks', sa.JSON(none_as_null=True), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE delivery SET picks = s.ids FROM "
                   "(SELECT delivery_id, json_agg(arxiv_id ORDER BY arxiv_id) AS ids "
                   "FROM sentpaper GROUP BY delivery_id) AS s WHERE delivery.id = s.delivery_id")
    else:
        op.execute("UPDATE delivery SET picks = (SELECT json_group_array(arxiv_id) "
                   "FROM sentpaper WHERE sentpaper.delivery_id = delivery.id) "
                   "WHERE id IN (SELECT delivery_id FROM sentpaper)")
    with op.batch_alter_table('sentpaper', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sentpaper_delivery_id'))
    op.drop_table('sentpaper')


def downgrade() -> None:
    op.create_table('sentpaper',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('arxiv_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['delivery.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'arxiv_id')
    )
    with op.batch_alter_table('sentpaper', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sentpaper_delivery_id'), ['delivery_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("INSERT INTO sentpaper (subscriber_id, arxiv_id, delivery_id) "
                   "SELECT subscriber_id, p.value, id FROM delivery, "
                   "json_array_elements_text(picks) AS p(value) WHERE picks IS NOT NULL "
                   "ON CONFLICT DO NOTHING")
    else:
        op.execute("INSERT OR IGNORE INTO sentpaper (subscriber_id, arxiv_id, delivery_id) "
                   "SELECT subscriber_id, p.value, delivery.id FROM delivery, "
                   "json_each(delivery.picks) AS p WHERE picks IS NOT NULL")
    # Not through batch mode: on SQLite that rebuilds the table, and with foreign keys on the
    # DROP of the old one would cascade. SQLite >= 3.35 drops in place.
    op.drop_column('delivery', 'picks')
