"""saved-paper updates and feed-only readers: paper revision stamps, what each reader knows of
their saved papers, and the 'feed' frequency

paper.version_seen_at and paper.revised_at say when ingest saw a new version, or a changed
abstract or comment (where code links appear). saved_paper.known_version, known_links and
checked_at hold what the reader already knows of each saved paper: a digest announces what
moved past them ("Updates to papers you saved"), once. The frequency 'feed' plans a reader's
picks for their personal feed and mails nothing.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 00:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain nullable ADD COLUMNs: SQLite adds them in place, with no table rebuild that could
    # cascade into the ledger or the saved lists.
    with op.batch_alter_table('paper', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column('revised_at', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
    with op.batch_alter_table('saved_paper', schema=None) as batch_op:
        batch_op.add_column(sa.Column('known_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('known_links', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('checked_at', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
    # Papers saved so far: their reader knows the version stored now (known_links stays NULL:
    # the first check takes the links as they are then, announcing nothing).
    op.execute("UPDATE saved_paper SET known_version = (SELECT version FROM paper "
               "WHERE paper.arxiv_id = saved_paper.arxiv_id)")
    if op.get_bind().dialect.name == 'postgresql':
        # PostgreSQL 12+ adds an enum value inside a transaction; it is usable once committed.
        op.execute("ALTER TYPE frequency ADD VALUE IF NOT EXISTS 'feed'")
    # SQLite keeps the frequency as VARCHAR with no CHECK constraint: 'feed' fits as it is.


def downgrade() -> None:
    # PostgreSQL cannot drop an enum value; feed-only readers go back to the daily email
    # (the value stays in the type, unused).
    op.execute("UPDATE subscriber SET frequency = 'daily' WHERE frequency = 'feed'")
    # Not through batch mode: on SQLite that rebuilds the table. SQLite >= 3.35 drops in place.
    for column in ('checked_at', 'known_links', 'known_version'):
        op.drop_column('saved_paper', column)
    for column in ('revised_at', 'version_seen_at'):
        op.drop_column('paper', column)
