"""billing: drop the idempotency status column (always 200, never read)

Revision ID: billing_0003
Revises: billing_0002
Create Date: 2026-12-01 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "billing_0003"
down_revision: str | None = "billing_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("billing_idempotency", schema=None) as batch_op:
        batch_op.drop_column("status")


def downgrade() -> None:
    with op.batch_alter_table("billing_idempotency", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.Integer(), nullable=True))
