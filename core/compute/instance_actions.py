"""Instance actions (os-instance-actions): who asked for what on a server, and how it went.

An action is recorded with the request that changed the server, in the same
transaction. Actions that start work on the node get one event, which stays
open until the instance settles: the node's reports move the instance out of
the task the action set, and the event is then closed as Success, or Error
when a fault was recorded meanwhile. Events are closed when someone reads them
and when the next action on the instance is recorded (no two tasks overlap, so
by then the previous one has ended).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.controller import states
from ciaostack.core.db import prepared, rows
from ciaostack.core.db.models import Instance, InstanceAction, InstanceActionEvent, utcnow
from ciaostack.core.identity.context import AuthContext

# Nova's action names and the event each one's work on the node is reported as.
CREATE, DELETE, START, STOP, REBOOT = "create", "delete", "start", "stop", "reboot"
LOCK, UNLOCK, FORCE_DELETE = "lock", "unlock", "forceDelete"
PAUSE, UNPAUSE, SUSPEND, RESUME = "pause", "unpause", "suspend", "resume"
REBUILD, RESIZE, CONFIRM_RESIZE, REVERT_RESIZE = (
    "rebuild",
    "resize",
    "confirmResize",
    "revertResize",
)
CREATE_IMAGE, CREATE_BACKUP = "createImage", "createBackup"
MIGRATE = "migrate"
RESET_STATE = "resetState"
SHELVE, SHELVE_OFFLOAD, UNSHELVE = "shelve", "shelveOffload", "unshelve"
EVENTS = {
    CREATE: "compute__do_build_and_run_instance",
    DELETE: "compute_terminate_instance",
    FORCE_DELETE: "compute_terminate_instance",
    START: "compute_start_instance",
    STOP: "compute_stop_instance",
    REBOOT: "compute_reboot_instance",
    PAUSE: "compute_pause_instance",
    UNPAUSE: "compute_unpause_instance",
    SUSPEND: "compute_suspend_instance",
    RESUME: "compute_resume_instance",
    REBUILD: "compute_rebuild_instance",
    RESIZE: "compute_prep_resize",
    MIGRATE: "cold_migrate",
    SHELVE: "compute_shelve_instance",
    SHELVE_OFFLOAD: "compute_shelve_offload_instance",
    UNSHELVE: "compute_unshelve_instance",
    CONFIRM_RESIZE: "compute_confirm_resize",
    REVERT_RESIZE: "compute_revert_resize",
    CREATE_IMAGE: "compute_snapshot_instance",
    CREATE_BACKUP: "compute_backup_instance",
}
SUCCESS, ERROR = "Success", "Error"


def record(
    session: Session, instance: Instance, action: str, caller: AuthContext, request_id: str
) -> None:
    """Write the action (and its event) for a change made in this transaction.

    Core INSERTs: every create and action writes these two rows, and nothing uses
    them as objects afterwards."""
    now = utcnow()
    if action != CREATE:  # a create is an instance's first action: nothing is open yet
        settle(session, instance, now)
    event = EVENTS.get(action)
    result = prepared.run(
        session,
        rows.insert_into(InstanceAction.__table__),
        {
            "instance_id": instance.id,
            "action": action,
            "request_id": request_id,
            "project_id": caller.project_id or instance.project_id,
            "user_id": caller.user_id,
            "start_time": now,
            "updated_at": now,
            "finish_time": None if event else now,
        },
    )
    if event is not None:
        prepared.run(
            session,
            rows.insert_into(InstanceActionEvent.__table__),
            {"action_id": result.lastrowid, "event": event, "start_time": now},
        )


def _done(instance: Instance, action: str) -> bool:
    """Whether the work `action` started has ended, judging from the instance now."""
    if action in (DELETE, FORCE_DELETE):
        return instance.vm_state == states.DELETED
    if instance.deleted:
        return True
    return instance.vm_state != states.BUILDING and instance.task_state is None


def _fault_since(instance: Instance, since: dt.datetime) -> bool:
    created = (instance.fault or {}).get("created")
    try:
        return created is not None and dt.datetime.fromisoformat(created) >= since
    except (TypeError, ValueError):
        return False


def settle(session: Session, instance: Instance, now: dt.datetime | None = None) -> None:
    """Close the open events whose work has ended."""
    open_events = session.execute(
        select(InstanceActionEvent, InstanceAction)
        .join(InstanceAction, InstanceAction.id == InstanceActionEvent.action_id)
        .where(
            InstanceAction.instance_id == instance.id,
            InstanceActionEvent.finish_time.is_(None),
        )
    ).all()
    now = now or utcnow()
    for event, action in open_events:
        if not _done(instance, action.action):
            continue
        failed = instance.vm_state == states.ERROR or _fault_since(instance, event.start_time)
        event.finish_time = max(event.start_time, min(instance.updated_at, now))
        event.result = ERROR if failed else SUCCESS
        event.host = instance.host
        action.finish_time = event.finish_time
        action.updated_at = event.finish_time
        if failed:
            action.message = ERROR


def listing(
    session: Session,
    instance: Instance,
    limit: int | None = None,
    marker: str | None = None,
    changes_since: dt.datetime | None = None,
    changes_before: dt.datetime | None = None,
) -> list[InstanceAction]:
    """The instance's actions, newest first; `marker` is a request id."""
    settle(session, instance)
    stmt = select(InstanceAction).where(InstanceAction.instance_id == instance.id)
    if changes_since is not None:
        stmt = stmt.where(InstanceAction.updated_at >= changes_since)
    if changes_before is not None:
        stmt = stmt.where(InstanceAction.updated_at <= changes_before)
    if marker is not None:
        row = session.scalar(
            select(InstanceAction).where(
                InstanceAction.instance_id == instance.id, InstanceAction.request_id == marker
            )
        )
        if row is None:
            raise errors.BadRequest(f"Marker {marker} could not be found.")
        stmt = stmt.where(
            (InstanceAction.start_time < row.start_time)
            | ((InstanceAction.start_time == row.start_time) & (InstanceAction.id < row.id))
        )
    stmt = stmt.order_by(InstanceAction.start_time.desc(), InstanceAction.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def show(
    session: Session, instance: Instance, request_id: str
) -> tuple[InstanceAction, list[InstanceActionEvent]]:
    settle(session, instance)
    action = session.scalar(
        select(InstanceAction)
        .where(InstanceAction.instance_id == instance.id, InstanceAction.request_id == request_id)
        .order_by(InstanceAction.id.desc())
        .limit(1)
    )
    if action is None:
        raise errors.NotFound(
            f"Action for request_id {request_id} on instance {instance.id} not found"
        )
    events = session.scalars(
        select(InstanceActionEvent)
        .where(InstanceActionEvent.action_id == action.id)
        .order_by(InstanceActionEvent.id)
    )
    return action, list(events)
