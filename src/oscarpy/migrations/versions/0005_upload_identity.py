"""Jobs are unique per upload (an object version: ETag and commit time), not per content.

Uploading the same bytes again is a new upload and runs the job again; the same upload's event
read twice (a crash, a redelivered webhook) still makes one job. `etag` stays indexed: the
reconcile pass skips any object whose content already had a job.

Revision ID: 0005_upload_identity
Revises: 0004_engine
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_upload_identity"
down_revision: str | Sequence[str] | None = "0004_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("upload", sa.String(255)))
        batch.drop_constraint("uq_jobs_object_version", type_="unique")
        batch.create_unique_constraint("uq_jobs_upload", ["service", "bucket", "key", "upload"])
    # Jobs made before keep their ETag as their upload: the events they came from are consumed.
    op.execute("UPDATE jobs SET upload = etag WHERE etag IS NOT NULL")
    op.create_index("ix_jobs_object", "jobs", ["service", "bucket", "key", "etag"])


def downgrade() -> None:
    op.drop_index("ix_jobs_object", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_upload", type_="unique")
        batch.create_unique_constraint(
            "uq_jobs_object_version", ["service", "bucket", "key", "etag"]
        )
        batch.drop_column("upload")
