"""Image import tasks: what Glance's GET /v2/images/{id}/tasks shows.

Glance records every interoperable import as a task of type `api_image_import`,
`processing` while it runs, then `success` or `failure` with a message, and
keeps it for a while after it ends. Uploads and server snapshots make no task,
in Glance as here, so most images have none.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ciaostack.core.db.models import ImageTask, utcnow
from ciaostack.core.images.model import Caller

IMPORT = "api_image_import"
PROCESSING, SUCCESS, FAILURE = "processing", "success", "failure"
# How long an ended task stays listed (Glance's default task_time_to_live).
TIME_TO_LIVE = dt.timedelta(hours=48)


def begin(
    session: Session,
    image_id: str,
    owner: str | None,
    caller: Caller,
    request_id: str,
    import_request: dict[str, Any],
) -> str:
    """Record an import that starts now; its id."""
    task_id = str(uuid.uuid4())
    session.add(
        ImageTask(
            id=task_id,
            image_id=image_id,
            type=IMPORT,
            status=PROCESSING,
            owner=owner,
            user_id=caller.user_id,
            request_id=request_id,
            input={"image_id": image_id, "import_req": import_request},
            message="",
        )
    )
    return task_id


def finish(session: Session, task_id: str, error: str | None = None) -> None:
    """The import ended: `success`, or `failure` with why."""
    task = session.get(ImageTask, task_id)
    if task is None:
        return  # its image, and so the task, was deleted meanwhile
    now = utcnow()
    task.status = FAILURE if error else SUCCESS
    task.message = error or ""
    task.result = None if error else {"image_id": task.image_id}
    task.updated_at = now
    task.expires_at = now + TIME_TO_LIVE


def for_image(session: Session, image_id: str) -> list[ImageTask]:
    """The image's tasks that have not expired, oldest first."""
    return list(
        session.scalars(
            select(ImageTask)
            .where(
                ImageTask.image_id == image_id,
                or_(ImageTask.expires_at.is_(None), ImageTask.expires_at >= utcnow()),
            )
            .order_by(ImageTask.created_at, ImageTask.id)
        )
    )
