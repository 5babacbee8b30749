"""users.session_token: signing out revokes every copy of the session and remember-me cookies.

Each existing user gets a random token, so cookies issued before the upgrade (which carry
the bare user id) sign nobody in: everyone signs in once more after upgrading.

Revision ID: 0004
Revises: 0003
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    # NOT NULL with a placeholder default, filled right below: a batch rebuild of `users`
    # on SQLite would drop the old table, and with foreign keys on that cascades into
    # every user's jobs.
    op.add_column(
        "users",
        sa.Column("session_token", sa.String(length=32), nullable=False, server_default=""),
    )
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("session_token", sa.String))
    conn = op.get_bind()
    for (user_id,) in conn.execute(sa.select(users.c.id)).all():
        conn.execute(
            users.update().where(users.c.id == user_id).values(session_token=secrets.token_hex(16))
        )
    if conn.dialect.name != "sqlite":  # SQLite cannot drop a column default in place
        op.alter_column("users", "session_token", server_default=None)


def downgrade():
    op.drop_column("users", "session_token")
