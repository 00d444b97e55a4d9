"""subscriber web: consent trail, pending address changes, erasure suppressions

Also makes SQLite never reuse a subscriber id (AUTOINCREMENT): links carry only the id and
never expire, so an erased subscriber's id must not come back for someone else. PostgreSQL
sequences never reuse ids, so there it is a no-op.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:03:37.100746
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _set_sqlite_autoincrement(enabled: bool) -> None:
    """Rebuild the subscriber table with or without AUTOINCREMENT (SQLite only).

    The rebuild drops the old table; env.py runs every SQLite migration with foreign keys
    off, so that DROP does not cascade into the ledger rows.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        'subscriber', recreate='always', table_kwargs={'sqlite_autoincrement': enabled}
    ):
        pass


def upgrade() -> None:
    _set_sqlite_autoincrement(True)
    op.create_table('suppression',
    sa.Column('email_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('email_hash')
    )
    op.create_table('consentevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.Enum('signup', 'confirm', 'imported', 'unsubscribe', 'resubscribe', 'email_change', name='consentaction'), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('consentevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consentevent_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('pendingemail',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('new_email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pendingemail', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pendingemail_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_pendingemail_new_email'), ['new_email'], unique=False)
        batch_op.create_index(batch_op.f('ix_pendingemail_subscriber_id'), ['subscriber_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pendingemail', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pendingemail_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_pendingemail_new_email'))
        batch_op.drop_index(batch_op.f('ix_pendingemail_created_at'))

    op.drop_table('pendingemail')
    with op.batch_alter_table('consentevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consentevent_subscriber_id'))

    op.drop_table('consentevent')
    op.drop_table('suppression')
    # PostgreSQL keeps an enum type after its table is gone; a later upgrade would trip on it.
    sa.Enum(name='consentaction').drop(op.get_bind(), checkfirst=True)
    _set_sqlite_autoincrement(False)
