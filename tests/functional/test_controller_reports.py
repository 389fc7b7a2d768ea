"""Launcher reports applied to a real datastore (SQLite, or PostgreSQL with --db postgresql)
the way several controllers apply them: each report may arrive twice, late, or at
two controllers at once, and must change the instance (and its quota) once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import types
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.controller import operations, reports, states
from ciaostack.core.db.models import (
    ComputeNode,
    Image,
    ImageProperty,
    Instance,
    InstanceAction,
    Migration,
    Outbox,
    QuotaUsage,
)
from ciaostack.core.db.session import Database
from ciaostack.core.ssntp import payloads as P

SMALL = {"id": "1", "name": "small", "ram": 512, "vcpus": 1, "disk": 1}
LARGE = {"id": "2", "name": "large", "ram": 2048, "vcpus": 4, "disk": 1}


@pytest.fixture(scope="module")
def db(migrated_database: Callable[[], Database]) -> Database:
    return migrated_database()


def _instance(db: Database, **fields: Any) -> Instance:
    """An instance of a project of its own, holding `SMALL` (and what `fields` add) in
    quota."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "project_id": uuid.uuid4().hex,
        "user_id": "u",
        "mem_mb": SMALL["ram"],
        "vcpus": SMALL["vcpus"],
        "disk_gb": SMALL["disk"],
        "vm_state": states.ACTIVE,
        "power_state": states.Power.RUNNING,
        "node_uuid": str(uuid.uuid4()),
        **fields,
    }
    instance = Instance(**values)
    held = {"instances": 1, "cores": instance.vcpus, "ram": instance.mem_mb}
    if instance.new_flavor:
        held |= {"cores": LARGE["vcpus"], "ram": LARGE["ram"]}
    with db.session() as session:
        session.add(instance)
        session.add_all(
            QuotaUsage(project_id=instance.project_id, resource=r, in_use=n)
            for r, n in held.items()
        )
    return instance


def _usage(db: Database, project_id: str) -> dict[str, int]:
    with db.session(readonly=True) as session:
        rows = session.scalars(select(QuotaUsage).where(QuotaUsage.project_id == project_id))
        return {row.resource: row.in_use for row in rows}


def _state(db: Database, instance_id: str) -> tuple[str, str | None]:
    with db.session(readonly=True) as session:
        instance = session.get(Instance, instance_id)
        assert instance is not None
        return instance.vm_state, instance.task_state


def _apply(db: Database, work: Callable[..., None], *args: Any) -> None:
    with db.session() as session:
        work(session, *args)


def _apply_at_once(db: Database, work: Callable[..., None], *args: Any) -> None:
    """Two controllers applying one report: the first applies it and keeps its
    transaction open while the second applies it too (on PostgreSQL the second must
    wait for the first's row lock, then find the work done)."""
    first_applied = threading.Event()
    failures: list[BaseException] = []

    def first() -> None:
        try:
            with db.session() as session:
                work(session, *args)
                session.flush()
                first_applied.set()
                time.sleep(0.5)  # the second controller reads meanwhile
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
            first_applied.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert first_applied.wait(10)
    _apply(db, work, *args)
    thread.join()
    assert not failures


def _stats(instance: Instance, state: P.InstanceState) -> P.Stats:
    return P.Stats(
        str(instance.node_uuid),
        P.NodeStatus.READY,
        4096,
        4096,
        10000,
        10000,
        4,
        4,
        instances=[P.InstanceStat(instance_uuid=instance.id, state=state)],
    )


def test_a_resize_failure_twice_releases_its_quota_once(db: Database) -> None:
    instance = _instance(db, task_state=states.RESIZE_PREP, new_flavor=LARGE)
    failure = P.InstanceFailure(instance.id, P.StartFailureReason.FULL_CN.value, "full")
    for _ in range(2):
        _apply(db, reports.resize_failed, failure)
    assert _usage(db, instance.project_id) == {"instances": 1, "cores": 1, "ram": 512}
    assert _state(db, instance.id) == (states.ACTIVE, None)


def test_a_failed_rebuild_leaves_the_server_in_error_holding_its_quota(db: Database) -> None:
    """As in Nova, a server in error counts against the quota until it is deleted; a
    rebuild then brings it back without asking for quota again."""
    instance = _instance(db, task_state=states.REBUILDING)
    failure = P.InstanceFailure(instance.id, "rebuild_failure", "disk gone")
    for _ in range(2):
        _apply(db, reports.instance_failure, failure, "REBUILD")
    held = {"instances": 1, "cores": 1, "ram": 512}
    assert _usage(db, instance.project_id) == held
    assert _state(db, instance.id) == (states.ERROR, None)
    with db.session() as session:
        found = session.get(Instance, instance.id)
        assert found is not None
        operations.rebuild_instance(session, found, "image-2", "again", {}, "")
    _apply(db, reports.instance_rebuilt, P.InstanceEvent(instance.id))
    assert _state(db, instance.id) == (states.ACTIVE, None)
    assert _usage(db, instance.project_id) == held
    with db.session() as session:
        found = session.get(Instance, instance.id)
        assert found is not None
        operations.delete_instance(session, found)
    assert _usage(db, instance.project_id) == {"instances": 0, "cores": 0, "ram": 0}


def test_a_batch_of_reports_is_applied_in_order(db: Database) -> None:
    """Reports applied together end as if applied one by one: a node that reported its
    server running and then stopped leaves it stopped, and a stray (an instance this
    datastore deleted) is named with the node that runs it."""
    server = _instance(db, vm_state=states.STOPPED, power_state=states.Power.SHUTDOWN)
    building = _instance(db, vm_state=states.BUILDING, power_state=states.Power.NOSTATE)
    gone = _instance(db, deleted=True, vm_state=states.DELETED)
    batch = [
        _stats(server, P.InstanceState.RUNNING),
        _stats(building, P.InstanceState.RUNNING),
        _stats(gone, P.InstanceState.RUNNING),
        _stats(server, P.InstanceState.STOPPED),
    ]
    with db.session() as session:
        strays = reports.stats(session, batch)
    assert strays == [(gone.node_uuid, gone.id)]
    assert _state(db, server.id) == (states.STOPPED, None)
    assert _state(db, building.id) == (states.ACTIVE, None)


def test_a_report_writes_only_what_it_changes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report read its instances, then another transaction changed one of them (on
    PostgreSQL, committed meanwhile; here, in the same transaction): the report writes
    what it changed, and leaves what the other wrote."""
    instance = _instance(db, vm_state=states.ACTIVE, power_state=states.Power.SHUTDOWN)
    applying = reports._apply_stats

    def meanwhile(session: Session, *args: Any) -> list[str]:
        session.execute(
            update(Instance).where(Instance.id == instance.id).values(task_state=states.REBOOTING)
        )
        return applying(session, *args)

    monkeypatch.setattr(reports, "_apply_stats", meanwhile)
    _apply(db, reports.stats, [_stats(instance, P.InstanceState.RUNNING)])
    with db.session(readonly=True) as session:
        found = session.get(Instance, instance.id)
        assert found is not None
        assert (found.power_state, found.task_state) == (states.Power.RUNNING, states.REBOOTING)


def test_events_after_a_report_in_one_batch_see_what_it_wrote(db: Database) -> None:
    """The session's objects are read afresh after reports applied without them: a
    node's report that its server runs, then that it stopped, leave it stopped even
    when the session held the server from before (as an earlier event of the batch may)."""
    instance = _instance(db, vm_state=states.BUILDING, power_state=states.Power.NOSTATE)
    stopped = P.InstanceEvent(instance.id, node_uuid=str(instance.node_uuid))
    with db.session() as session:
        held = session.get(Instance, instance.id)
        assert held is not None and held.vm_state == states.BUILDING
        reports.stats(session, [_stats(instance, P.InstanceState.RUNNING)])
        reports.instance_stopped(session, stopped)
    assert _state(db, instance.id) == (states.STOPPED, None)


def test_a_report_keeps_its_node_row(db: Database) -> None:
    """A node's first report adds its row (a node the datastore lost, or never saw
    connect); later ones change what they say and keep what they leave out."""
    node = str(uuid.uuid4())
    first = dataclasses.replace(
        _stats_of("gone", node, P.InstanceState.RUNNING), hostname="h1", availability_zone="az1"
    )
    assert _apply_stats(db, first) == [(node, "gone")]
    with db.session(readonly=True) as session:
        row = session.get(ComputeNode, node)
        assert row is not None
        assert (row.hostname, row.availability_zone, row.connected) == ("h1", "az1", True)
        assert (row.mem_available_mb, row.vcpus_total, row.load) == (4096, 4, 0.0)
    later = dataclasses.replace(
        first, hostname="", availability_zone="", mem_available_mb=1024, load=0.5, instances=[]
    )
    with db.session() as session:
        session.execute(update(ComputeNode).where(ComputeNode.uuid == node).values(connected=False))
    assert _apply_stats(db, later) == []
    with db.session(readonly=True) as session:
        row = session.get(ComputeNode, node)
        assert row is not None
        assert (row.hostname, row.availability_zone, row.connected) == ("h1", "az1", True)
        assert (row.mem_total_mb, row.mem_available_mb, row.load) == (4096, 1024, 0.5)
        assert (row.node_type, row.status) == ("compute", P.NodeStatus.READY.value)


def test_rows_are_written_in_key_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever columns each row changes, rows are written (and so locked) in key
    order: controllers applying the same reports on PostgreSQL never wait on each
    other in a circle."""
    written: list[str] = []

    def run(_session: Any, _statement: Any, params: list[dict[str, Any]]) -> None:
        written.extend(p["node_uuid"] for p in params)

    monkeypatch.setattr(reports.prepared, "run", run)
    read = {key: types.SimpleNamespace(load=0.0, mem=1) for key in "dcab"}
    now = {
        "a": types.SimpleNamespace(load=1.0, mem=1),
        "b": types.SimpleNamespace(load=1.0, mem=2),
        "c": types.SimpleNamespace(load=1.0, mem=1),
        "d": types.SimpleNamespace(load=0.0, mem=1),
    }
    changed = reports._update(None, reports._UPDATE_NODE, "node_uuid", read, now, ("load", "mem"))
    assert written == changed == ["a", "b", "c"]


def test_a_server_in_error_changes_only_by_what_is_asked_of_it(db: Database) -> None:
    """Reports leave a server in error alone, until a hard reboot asked of it ends with
    the node reporting it running."""
    instance = _instance(db, vm_state=states.ERROR, power_state=states.Power.CRASHED)
    _apply(db, reports.stats, [_stats(instance, P.InstanceState.RUNNING)])
    assert _state(db, instance.id) == (states.ERROR, None)
    with db.session() as session:
        found = session.get(Instance, instance.id)
        assert found is not None
        operations.reboot_instance(session, found, hard=True)
    _apply(db, reports.stats, [_stats(instance, P.InstanceState.RUNNING)])
    assert _state(db, instance.id) == (states.ACTIVE, None)


def test_a_server_that_never_ran_cannot_be_rebuilt(db: Database) -> None:
    instance = _instance(db, vm_state=states.ERROR, node_uuid=None)
    with db.session() as session, pytest.raises(errors.Conflict, match="is not ready"):
        operations.rebuild_instance(session, session.get(Instance, instance.id), "i", "n", {}, "")


def test_two_controllers_applying_one_resize_failure_at_once(db: Database) -> None:
    """The second controller's transaction waits for the first's lock on the instance,
    then finds the task gone; without the lock (PostgreSQL, READ COMMITTED) both saw
    the resize in flight and both released its quota."""
    instance = _instance(db, task_state=states.RESIZE_PREP, new_flavor=LARGE)
    failure = P.InstanceFailure(instance.id, P.StartFailureReason.FULL_CN.value, "full")
    _apply_at_once(db, reports.resize_failed, failure)
    assert _usage(db, instance.project_id) == {"instances": 1, "cores": 1, "ram": 512}


@pytest.mark.parametrize(
    "task",
    [
        states.REBUILDING,
        states.RESIZE_PREP,
        states.RESIZE_REVERTING,
        states.IMAGE_SNAPSHOT_PENDING,
        states.IMAGE_BACKUP,
    ],
)
def test_stats_never_end_a_task_only_its_event_ends(db: Database, task: str) -> None:
    extra: dict[str, Any] = {"new_flavor": LARGE} if task == states.RESIZE_PREP else {}
    if task == states.RESIZE_REVERTING:
        extra = {"old_flavor": SMALL, "vm_state": states.RESIZED}
    instance = _instance(db, task_state=task, **extra)
    vm_state = _state(db, instance.id)[0]
    for state in (P.InstanceState.STOPPED, P.InstanceState.RUNNING, P.InstanceState.EXITED):
        _apply(db, reports.stats, [_stats(instance, state)])
        _apply(db, reports.instance_stopped, P.InstanceEvent(instance.id))
        assert _state(db, instance.id) == (vm_state, task)
    if task == states.RESIZE_PREP:
        # ... so the event still finds the resize, and the instance waits for a verdict.
        _apply(db, reports.instance_resized, P.InstanceEvent(instance.id))
        assert _state(db, instance.id) == (states.RESIZED, None)


def test_a_failure_ends_only_the_task_of_its_command(db: Database) -> None:
    instance = _instance(db, task_state=states.UNPAUSING, vm_state=states.PAUSED)
    late = P.InstanceFailure(instance.id, "pause_failure", "too late")
    _apply(db, reports.instance_failure, late, "PAUSE")
    assert _state(db, instance.id) == (states.PAUSED, states.UNPAUSING)
    stale = P.InstanceFailure(instance.id, "rebuild_failure", "an old rebuild")
    _apply(db, reports.instance_failure, stale, "REBUILD")
    assert _state(db, instance.id) == (states.PAUSED, states.UNPAUSING)
    assert _usage(db, instance.project_id)["instances"] == 1
    current = P.InstanceFailure(instance.id, "unpause_failure", "no")
    _apply(db, reports.instance_failure, current, "UNPAUSE")
    assert _state(db, instance.id) == (states.PAUSED, None)
    with db.session(readonly=True) as session:
        fault = session.get(Instance, instance.id).fault  # type: ignore[union-attr]
    assert fault is not None and "UNPAUSE failed" in fault["message"]


def _image(db: Database, owner: str, status: str = "queued", **props: str) -> str:
    image_id = str(uuid.uuid4())
    with db.session() as session:
        session.add(Image(id=image_id, owner=owner, status=status, visibility="private"))
        session.flush()
        session.add_all(ImageProperty(image_id=image_id, name=k, value=v) for k, v in props.items())
    return image_id


def _exists(db: Database, image_id: str) -> bool:
    with db.session(readonly=True) as session:
        return session.get(Image, image_id) is not None


def test_a_snapshot_failure_discards_only_that_instances_unfinished_image(db: Database) -> None:
    instance = _instance(db, task_state=states.IMAGE_SNAPSHOT_PENDING)
    project = instance.project_id
    others = [
        _image(db, "another-project", instance_uuid=instance.id),
        _image(db, project, instance_uuid=str(uuid.uuid4())),
        _image(db, project),
        _image(db, project, status="active", instance_uuid=instance.id),
    ]
    for image_id in others:
        failure = P.SnapshotFailure(instance.id, image_id, "upload_failure", "")
        _apply(db, reports.snapshot_failed, failure)
        assert _exists(db, image_id)
    own = _image(db, project, instance_uuid=instance.id)
    _apply(db, reports.snapshot_failed, P.SnapshotFailure(instance.id, own, "upload_failure"))
    assert not _exists(db, own)


def test_no_second_resize_while_one_is_pending(db: Database) -> None:
    """Even with its task gone (a report that ended it), a resize whose flavor is still
    pending holds its quota and waits for its event: another is refused."""
    instance = _instance(db, new_flavor=LARGE)
    with db.session() as session, pytest.raises(errors.Conflict):
        row = session.get(Instance, instance.id)
        assert row is not None
        operations.resize_instance(session, row, LARGE, {})


def _action(db: Database, instance: Instance, age_s: float) -> None:
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=age_s)
    with db.session() as session:
        session.add(
            InstanceAction(
                instance_id=instance.id,
                action="x",
                request_id="req-x",
                project_id=instance.project_id,
                user_id="u",
                start_time=started,
                updated_at=started,
            )
        )


def test_tasks_no_node_answered_fail_after_the_deadline(db: Database) -> None:
    """A node that dies mid-task leaves nothing stuck: past the deadline each task fails
    as its node's failure would have failed it (quota, flavor, snapshot image), and a
    task still within it is left alone."""
    cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=600)
    pausing = _instance(db, task_state=states.PAUSING)
    _action(db, pausing, 900)
    recent = _instance(db, task_state=states.PAUSING)
    _action(db, recent, 60)
    resizing = _instance(db, task_state=states.RESIZE_PREP, new_flavor=LARGE)
    _action(db, resizing, 900)
    snapshotting = _instance(db, task_state=states.IMAGE_SNAPSHOT_PENDING)
    _action(db, snapshotting, 900)
    image = _image(db, snapshotting.project_id, instance_uuid=snapshotting.id)
    for _ in range(2):  # two controllers, or two passes: the same outcome
        _apply(db, reports.expire_tasks, cutoff)
    assert _state(db, pausing.id) == (states.ACTIVE, None)
    assert _state(db, recent.id) == (states.ACTIVE, states.PAUSING)
    assert _state(db, resizing.id) == (states.ACTIVE, None)
    assert _usage(db, resizing.project_id) == {"instances": 1, "cores": 1, "ram": 512}
    assert _state(db, snapshotting.id) == (states.ACTIVE, None)
    assert not _exists(db, image)
    with db.session(readonly=True) as session:
        fault = session.get(Instance, pausing.id).fault
    assert fault is not None and "did not answer" in fault["message"]


def _outbox(db: Database, instance_id: str) -> list[tuple[str, str]]:
    """(command, node) of the commands queued for the instance, oldest first."""
    with db.session(readonly=True) as session:
        rows = session.scalars(
            select(Outbox).where(Outbox.instance_id == instance_id).order_by(Outbox.id)
        )
        return [(row.command, row.payload["workload_agent_uuid"]) for row in rows]


def test_a_resize_that_moved_is_applied_once_by_every_controller(db: Database) -> None:
    """The new node's InstanceResized moves the instance and stops the copy left
    behind, once however often it arrives; reports of either copy from the other node
    change nothing meanwhile; the revert's InstanceDeleted brings it back once, even
    from two controllers at once."""
    source, target = str(uuid.uuid4()), str(uuid.uuid4())
    instance = _instance(db, task_state=states.RESIZE_PREP, new_flavor=LARGE, node_uuid=source)
    # The new copy starting on the target is neither the instance's state nor a stray.
    assert _apply_stats(db, _stats_of(instance.id, target, P.InstanceState.RUNNING)) == []
    assert _state(db, instance.id) == (states.ACTIVE, states.RESIZE_PREP)
    for _ in range(2):
        _apply(db, reports.instance_resized, P.InstanceEvent(instance.id, target))
    with db.session(readonly=True) as session:
        moved = session.get(Instance, instance.id)
        assert (moved.node_uuid, moved.resize_source_node) == (target, source)
        assert (moved.vm_state, moved.vcpus) == (states.RESIZED, LARGE["vcpus"])
    assert _outbox(db, instance.id) == [("STOP", source)]
    # The stopped copy on the source, reported or announced, changes nothing.
    assert _apply_stats(db, _stats_of(instance.id, source, P.InstanceState.STOPPED)) == []
    _apply(db, reports.instance_stopped, P.InstanceEvent(instance.id, source))
    _apply(db, reports.instance_deleted, P.InstanceEvent(instance.id, source))
    assert _state(db, instance.id) == (states.RESIZED, None)

    with db.session() as session:
        operations.revert_resize(session, session.get(Instance, instance.id))
    assert _outbox(db, instance.id)[-1] == ("DELETE", target)
    _apply_at_once(db, reports.instance_deleted, P.InstanceEvent(instance.id, target))
    with db.session(readonly=True) as session:
        back = session.get(Instance, instance.id)
        assert (back.node_uuid, back.resize_source_node) == (source, None)
        assert (back.vcpus, back.task_state) == (SMALL["vcpus"], states.POWERING_ON)
    assert _outbox(db, instance.id)[-1:] == [("RESTART", source)]
    assert [c for c, _ in _outbox(db, instance.id)].count("RESTART") == 1
    assert _usage(db, instance.project_id) == {"instances": 1, "cores": 1, "ram": 512}


def _stats_of(instance_id: str, node_uuid: str, state: P.InstanceState) -> P.Stats:
    return P.Stats(
        node_uuid,
        P.NodeStatus.READY,
        4096,
        4096,
        10000,
        10000,
        4,
        4,
        instances=[P.InstanceStat(instance_uuid=instance_id, state=state)],
    )


def _apply_stats(db: Database, report: P.Stats) -> list[tuple[str, str]]:
    """The strays a report leaves (the instances its node must delete)."""
    with db.session() as session:
        return reports.stats(session, [report])


def test_a_confirmed_move_ignores_the_left_copy_until_it_is_gone(db: Database) -> None:
    """After a confirm, the node the instance left still lists its stopped copy until
    it deletes it: even with the instance's own node unreachable (its reports absent),
    that copy must not take the instance back; once reported deleted, a copy it lists
    again is a stray."""
    source, target = str(uuid.uuid4()), str(uuid.uuid4())
    instance = _instance(db, task_state=states.RESIZE_PREP, new_flavor=LARGE, node_uuid=source)
    _apply(db, reports.instance_resized, P.InstanceEvent(instance.id, target))
    with db.session() as session:
        operations.confirm_resize(session, session.get(Instance, instance.id))
    assert _outbox(db, instance.id)[-1] == ("DELETE", source)
    with db.session() as session, pytest.raises(errors.Conflict, match="a resize is pending"):
        operations.resize_instance(session, session.get(Instance, instance.id), SMALL, {})
    # No node row for the target: it is not known to be up.
    assert _apply_stats(db, _stats_of(instance.id, source, P.InstanceState.STOPPED)) == []
    with db.session(readonly=True) as session:
        row = session.get(Instance, instance.id)
        assert (row.node_uuid, row.vm_state, row.resize_source_node) == (
            target,
            states.ACTIVE,
            source,
        )
    _apply(db, reports.instance_deleted, P.InstanceEvent(instance.id, source))
    with db.session(readonly=True) as session:
        row = session.get(Instance, instance.id)
        assert (row.node_uuid, row.resize_source_node, row.deleted) == (target, None, False)
    # Listed there again (a late report), it is a copy to delete, not the instance.
    _apply_stats(db, _stats_of(instance.id, target, P.InstanceState.RUNNING))
    assert _apply_stats(db, _stats_of(instance.id, source, P.InstanceState.STOPPED)) == [
        (source, instance.id)
    ]


def _migrations(db: Database, instance_id: str) -> list[tuple[int, str]]:
    with db.session(readonly=True) as session:
        rows = session.scalars(
            select(Migration).where(Migration.instance_id == instance_id).order_by(Migration.id)
        )
        return [(row.id, row.status) for row in rows]


def test_a_stale_start_failure_ends_only_its_own_move(db: Database) -> None:
    """A move's START carries its resize's number: the failure of the first move, applied
    late by another controller, leaves the second resize in flight."""
    source, target = str(uuid.uuid4()), str(uuid.uuid4())
    instance = _instance(db, node_uuid=source)
    with db.session() as session:
        operations.resize_instance(session, session.get(Instance, instance.id), LARGE, {})
    [(first, _)] = _migrations(db, instance.id)
    failure = P.StartFailure(instance.id, P.StartFailureReason.FULL_CN, "full", target, first)
    _apply(db, reports.start_failed, failure, 3)
    assert _state(db, instance.id) == (states.ACTIVE, None)
    with db.session() as session:
        operations.resize_instance(session, session.get(Instance, instance.id), LARGE, {})
    _apply(db, reports.start_failed, failure, 3)  # late, at another controller
    assert _state(db, instance.id) == (states.ACTIVE, states.RESIZE_PREP)
    assert [status for _, status in _migrations(db, instance.id)] == ["error", "pre-migrating"]


def test_deleting_a_moved_server_deletes_both_copies(db: Database) -> None:
    source, target = str(uuid.uuid4()), str(uuid.uuid4())
    instance = _instance(db, node_uuid=source)
    with db.session() as session:
        operations.resize_instance(session, session.get(Instance, instance.id), LARGE, {})
    _apply(db, reports.instance_resized, P.InstanceEvent(instance.id, target))
    assert _state(db, instance.id) == (states.RESIZED, None)
    with db.session() as session:
        operations.delete_instance(session, session.get(Instance, instance.id))
    assert _outbox(db, instance.id)[-2:] == [("DELETE", target), ("DELETE", source)]
    assert [status for _, status in _migrations(db, instance.id)] == ["confirmed"]
    assert _usage(db, instance.project_id) == {"instances": 0, "cores": 0, "ram": 0}


def test_a_shelve_ends_only_with_its_own_image(db: Database) -> None:
    """A late SnapshotUploaded of an earlier snapshot ends no shelve; the shelve's own
    offloads the instance once, however often it comes; a second shelve waits until
    the first one's image is gone."""
    node = str(uuid.uuid4())
    start = P.Start("i", "p", "img", P.Requirements(mem_mb=512, vcpus=1))
    instance = _instance(
        db, node_uuid=node, start_payload=P.to_dict(start), availability_zone="nova"
    )
    with db.session() as session:
        operations.snapshot_instance(
            session, session.get(Instance, instance.id), "img-shelved", "u", "g", "shelve"
        )
    _apply(db, reports.snapshot_uploaded, P.SnapshotEvent(instance.id, "img-earlier", node))
    assert _state(db, instance.id) == (states.ACTIVE, states.SHELVING_IMAGE_PENDING_UPLOAD)
    for _ in range(2):
        _apply(db, reports.snapshot_uploaded, P.SnapshotEvent(instance.id, "img-shelved", node))
    assert _state(db, instance.id) == (states.SHELVED, states.SHELVING_OFFLOADING)
    assert [c for c, _ in _outbox(db, instance.id)].count("DELETE") == 1
    for _ in range(2):
        _apply(db, reports.instance_deleted, P.InstanceEvent(instance.id, node))
    with db.session(readonly=True) as session:
        row = session.get(Instance, instance.id)
        assert (row.vm_state, row.task_state, row.node_uuid) == (
            states.SHELVED_OFFLOADED,
            None,
            None,
        )
    # Its old node still listing it (a late report): a copy to delete there.
    assert _apply_stats(db, _stats_of(instance.id, node, P.InstanceState.STOPPED)) == [
        (node, instance.id)
    ]
    with db.session() as session:
        operations.unshelve_instance(session, session.get(Instance, instance.id))
    # Unshelved onto a node of another zone: it asked for none, so it is in that one.
    elsewhere = dataclasses.replace(
        _stats_of(instance.id, node, P.InstanceState.RUNNING), availability_zone="zone-b"
    )
    _apply_stats(db, elsewhere)
    assert _state(db, instance.id) == (states.ACTIVE, None)
    with db.session(readonly=True) as session:
        assert session.get(Instance, instance.id).availability_zone == "zone-b"
    with db.session() as session, pytest.raises(errors.Conflict, match="still being deleted"):
        operations.snapshot_instance(
            session, session.get(Instance, instance.id), "img-2", "u", "g", "shelve"
        )


def _reset(db: Database, instance_id: str, vm_state: str) -> None:
    with db.session() as session:
        row = session.get(Instance, instance_id)
        assert row is not None
        reports.reset_state(session, row, vm_state)


def test_a_reset_state_ends_the_task_as_its_failure_would(db: Database) -> None:
    """os-resetState during a resize frees the quota the new flavor held and drops it,
    so that the resize's late event changes nothing; during a snapshot it discards the
    unfinished image. A resize waiting for its verdict, or a shelved server, is refused."""
    resizing = _instance(db)
    _resize(db, resizing.id)
    assert [command for command, _ in _outbox(db, resizing.id)] == ["RESIZE"]
    _reset(db, resizing.id, states.ERROR)
    assert _state(db, resizing.id) == (states.ERROR, None)
    assert _usage(db, resizing.project_id) == {"instances": 1, "cores": 1, "ram": 512}
    # Its RESIZE, not sent yet, is not sent at all; the reset leaves no fault of its own.
    assert _outbox(db, resizing.id) == []
    with db.session(readonly=True) as session:
        assert session.get(Instance, resizing.id).fault is None
    _apply(db, reports.instance_resized, P.InstanceEvent(resizing.id, str(resizing.node_uuid)))
    with db.session(readonly=True) as session:
        row = session.get(Instance, resizing.id)
        assert (row.vcpus, row.new_flavor, row.vm_state) == (1, None, states.ERROR)
    snapshotting = _instance(db, task_state=states.IMAGE_SNAPSHOT_PENDING)
    image = _image(db, snapshotting.project_id, instance_uuid=snapshotting.id)
    _reset(db, snapshotting.id, states.ACTIVE)
    assert _state(db, snapshotting.id) == (states.ACTIVE, None)
    assert not _exists(db, image)
    for vm_state in (states.RESIZED, states.SHELVED_OFFLOADED):
        held = _instance(db, vm_state=vm_state)
        with pytest.raises(errors.Conflict):
            _reset(db, held.id, states.ACTIVE)
        assert _state(db, held.id) == (vm_state, None)


def _resize(db: Database, instance_id: str) -> int:
    """Resize to LARGE; the number the RESIZE carries (its migration's id)."""
    with db.session() as session:
        row = session.get(Instance, instance_id)
        assert row is not None
        operations.resize_instance(session, row, LARGE, {})
    with db.session(readonly=True) as session:
        command = session.scalars(
            select(Outbox)
            .where(Outbox.instance_id == instance_id, Outbox.command == "RESIZE")
            .order_by(Outbox.id.desc())
        ).first()
        assert command is not None
        attempt = command.payload["attempt"]
    assert attempt == _migrations(db, instance_id)[-1][0]
    return attempt


def test_a_late_answer_to_an_earlier_resize_ends_nothing(db: Database) -> None:
    """A resize whose node did not answer in time failed; the answers that come after
    that (its node's InstanceResized or ResizeFailure) must not end the next resize."""
    instance = _instance(db)
    node = str(instance.node_uuid)
    first = _resize(db, instance.id)
    timed_out = P.InstanceFailure(instance.id, reports.TIMED_OUT, "the node did not answer")
    _apply(db, reports.resize_failed, timed_out)
    assert _state(db, instance.id) == (states.ACTIVE, None)
    second = _resize(db, instance.id)
    assert second != first
    late = P.InstanceFailure(instance.id, P.StartFailureReason.FULL_CN.value, "x", attempt=first)
    _apply(db, reports.resize_failed, late)
    _apply(db, reports.instance_resized, P.InstanceEvent(instance.id, node, attempt=first))
    assert _state(db, instance.id) == (states.ACTIVE, states.RESIZE_PREP)
    _apply(db, reports.instance_resized, P.InstanceEvent(instance.id, node, attempt=second))
    assert _state(db, instance.id) == (states.RESIZED, None)
    assert [status for _, status in _migrations(db, instance.id)] == ["error", "finished"]
    # And a revert: a failure numbered for another resize does not end it.
    with db.session() as session:
        row = session.get(Instance, instance.id)
        assert row is not None
        operations.revert_resize(session, row)
    stale = P.InstanceFailure(instance.id, "revert_resize_failure", "x", attempt=first)
    _apply(db, reports.instance_failure, stale, "REVERT_RESIZE")
    assert _state(db, instance.id) == (states.RESIZED, states.RESIZE_REVERTING)
    _apply(db, reports.resize_reverted, P.InstanceEvent(instance.id, node, attempt=second))
    assert _state(db, instance.id) == (states.ACTIVE, None)


def test_an_unshelve_whose_start_went_missing_is_asked_again(db: Database) -> None:
    """No node reported it and no command for it waits: its START was lost (with a
    scheduler, say). The controller's reconciliation sends it again, from the shelved
    image, within the resend delay, and leaves alone one still within it."""
    from ciaostack.core.controller.service import Controller

    start = P.Start("x", "t", "boot-image", P.Requirements(512, 1, 1024, node_id="n1"))
    long_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=60)

    def unshelving(updated_at: dt.datetime) -> Instance:
        instance = _instance(
            db,
            vm_state=states.SHELVED_OFFLOADED,
            task_state=states.UNSHELVING,
            node_uuid=None,
            shelved_image_id=str(uuid.uuid4()),
        )
        with db.session() as session:
            row = session.get(Instance, instance.id)
            assert row is not None
            row.start_payload = P.to_dict(dataclasses.replace(start, instance_uuid=row.id))
            row.updated_at = updated_at
        return instance

    lost = unshelving(long_ago)
    recent = unshelving(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    controller = Controller(db, lambda handler, on_connected: None, resend_after=30)
    assert controller.reconcile() is True
    with db.session(readonly=True) as session:
        [resent] = session.scalars(select(Outbox).where(Outbox.instance_id == lost.id)).all()
        assert not session.scalars(select(Outbox).where(Outbox.instance_id == recent.id)).all()
    assert resent.command == "START"
    payload = P.from_dict(P.Start, resent.payload)
    assert payload.image_uuid == lost.shelved_image_id
    assert (payload.requirements.node_id, payload.node_uuid) == ("", "")
    # Asked again only once the delay has passed again, not at every pass.
    with db.session() as session:
        session.execute(delete(Outbox).where(Outbox.instance_id == lost.id))
    controller.reconcile()
    assert _outbox(db, lost.id) == []
    # The START sent again has a number of its own: a failure of the lost one (say
    # its node, reporting late) ends nothing; the new one's failure ends the unshelve,
    # and the server, still offloaded, names no node.
    with db.session() as session:
        row = session.get(Instance, lost.id)
        assert row is not None
        row.node_uuid, row.host = "n2", "host-2"  # the node that took it reported it
    for attempt in (payload.attempt - 1, payload.attempt):
        reason = P.StartFailureReason.LAUNCH_FAILURE
        failure = P.StartFailure(lost.id, reason, "boom", "n2", attempt)
        _apply(db, reports.start_failed, failure, 3)
        ended = attempt == payload.attempt
        expected = (states.SHELVED_OFFLOADED, None if ended else states.UNSHELVING)
        assert _state(db, lost.id) == expected
    with db.session(readonly=True) as session:
        row = session.get(Instance, lost.id)
        assert (row.node_uuid, row.host, row.fault["message"]) == (None, None, "boom")


def test_only_a_shelve_powers_the_guest_off_before_its_snapshot(db: Database) -> None:
    for action in ("shelve", "createImage"):
        instance = _instance(db)
        with db.session() as session:
            row = session.get(Instance, instance.id)
            assert row is not None
            operations.snapshot_instance(session, row, str(uuid.uuid4()), "http://x", "g", action)
        with db.session(readonly=True) as session:
            [command] = session.scalars(select(Outbox).where(Outbox.instance_id == instance.id))
            assert command.payload["power_off"] is (action == "shelve")
