"""personal feed and saved papers: subscriber.feed_generation, the saved_paper table

Every reader's private Atom feed address carries subscriber.feed_generation; "New feed
address" on the manage page raises it, and addresses signed for an older one are refused.
saved_paper holds the papers a reader saved from a daily email (their list on the manage
page, its BibTeX and CSV downloads, and a strong "more like this" for the ranking).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN with a constant default: SQLite does it in place, with no table rebuild that
    # could cascade into the ledger.
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('feed_generation', sa.Integer(), server_default='0',
                                      nullable=False))
    op.create_table('saved_paper',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('arxiv_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['arxiv_id'], ['paper.arxiv_id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'arxiv_id')
    )


def downgrade() -> None:
    op.drop_table('saved_paper')
    # Not through batch mode: on SQLite that rebuilds the table, and with foreign keys on the
    # DROP of the old one would cascade into every ledger row. SQLite >= 3.35 drops in place.
    op.drop_column('subscriber', 'feed_generation')
