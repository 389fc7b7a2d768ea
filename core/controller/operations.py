"""What the compute APIs ask of the core: plain functions on a unit of work.

Each one changes the instance row and writes the outbox row for its command
in the caller's transaction, so a command is sent if and only if the change
it belongs to was committed. The controller process sends outbox rows; the
launcher's reports then settle the state.

Flavors travel as plain mappings ({"id", "name", "ram", "vcpus", "disk", ...}):
the instance row keeps its resources, the server attributes the flavor the API
shows, and a resize in flight keeps the other flavor on the instance.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ciaostack.core import errors, quota
from ciaostack.core.controller import migrations, states
from ciaostack.core.db import prepared, rows
from ciaostack.core.db.models import Instance, Outbox, ServerAttributes, utcnow
from ciaostack.core.ssntp import payloads as P

NOTIFY_CHANNEL = "ciaostack_outbox"


@dataclasses.dataclass(frozen=True)
class InstanceSpec:
    """What a new instance needs; the compat layer fills it from its request."""

    project_id: str
    user_id: str
    name: str
    image_id: str
    mem_mb: int
    vcpus: int
    disk_gb: int = 0
    vm_type: str = "qemu"
    availability_zone: str = ""
    user_data: str = ""
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    node_id: str = ""
    same_node_as: tuple[str, ...] = ()
    different_node_from: tuple[str, ...] = ()
    networking: P.Networking | None = None


def quota_deltas(instance: Instance) -> dict[str, int]:
    """What an instance holds against its project's quota: during a resize, the larger
    of its two flavors, so that whichever it ends up with was paid for."""
    held = {"instances": 1, "cores": instance.vcpus, "ram": instance.mem_mb}
    other = instance.new_flavor or instance.old_flavor
    if other:
        held["cores"] = max(held["cores"], other["vcpus"])
        held["ram"] = max(held["ram"], other["ram"])
    return held


def excess(flavor: Mapping[str, Any], than: Mapping[str, Any]) -> dict[str, int]:
    """The quota `flavor` needs beyond what `than` holds (nothing for a smaller one)."""
    return {
        "cores": max(0, flavor["vcpus"] - than["vcpus"]),
        "ram": max(0, flavor["ram"] - than["ram"]),
    }


def wake_controllers(session: Session) -> None:
    """PostgreSQL: wake the controllers when this transaction commits."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def enqueue(
    session: Session, instance_id: str, command: str, payload: dict[str, Any], wake: bool = True
) -> None:
    session.add(Outbox(instance_id=instance_id, command=command, payload=payload))
    if wake:
        wake_controllers(session)


def start_payload(instance: Instance, spec: InstanceSpec) -> P.Start:
    return P.Start(
        instance_uuid=instance.id,
        tenant_uuid=instance.project_id,
        image_uuid=instance.image_id,
        name=instance.name,
        vm_type=instance.vm_type,
        requirements=P.Requirements(
            mem_mb=spec.mem_mb,
            vcpus=spec.vcpus,
            disk_mb=spec.disk_gb * 1024,
            node_id=spec.node_id,
            availability_zone=spec.availability_zone,
            same_node_as=list(spec.same_node_as),
            different_node_from=list(spec.different_node_from),
        ),
        networking=spec.networking,
        user_data=spec.user_data,
        metadata=dict(spec.metadata),
    )


def create_instances(
    session: Session,
    spec: InstanceSpec,
    count: int = 1,
    limits: Mapping[str, int] | None = None,
    ids: Sequence[str] = (),
) -> list[Instance]:
    """BUILD rows, their quota and their START commands, all or nothing; `ids` are the
    instances' ids when the caller needed them first (for their ports)."""
    if count < 1:
        raise errors.BadRequest("count must be at least 1")
    now = utcnow()
    created: list[Instance] = []
    for index in range(count):
        name = spec.name if count == 1 else f"{spec.name}-{index + 1}"
        # Every column set: the rows are written without a flush (see db.rows).
        instance = Instance(
            id=ids[index] if ids else str(uuid.uuid4()),
            project_id=spec.project_id,
            user_id=spec.user_id,
            name=name,
            image_id=spec.image_id,
            vm_type=spec.vm_type,
            mem_mb=spec.mem_mb,
            vcpus=spec.vcpus,
            disk_gb=spec.disk_gb,
            vm_state=states.BUILDING,
            task_state=states.SPAWNING,
            power_state=0,
            node_uuid=None,
            host=None,
            node_lost=False,
            availability_zone=spec.availability_zone,
            start_attempts=1,
            excluded_nodes=[],
            fault=None,
            new_flavor=None,
            old_flavor=None,
            resize_source_node=None,
            shelved_image_id=None,
            created_at=now,
            updated_at=now,
            launched_at=None,
            terminated_at=None,
            deleted=False,
        )
        instance.start_payload = P.to_dict(
            start_payload(instance, dataclasses.replace(spec, name=name))
        )
        created.append(instance)
    # One reservation for the lot: all of them fit, or none is created.
    deltas = {k: v * count for k, v in quota_deltas(created[0]).items()}
    quota.reserve(session, spec.project_id, deltas, limits or {})
    rows.insert_objects(session, created)
    prepared.run(
        session,
        rows.insert_into(Outbox.__table__),
        [
            {"instance_id": i.id, "command": "START", "payload": i.start_payload, "created_at": now}
            for i in created
        ],
    )
    wake_controllers(session)
    return created


def instance_command(instance: Instance, **extra: str) -> dict[str, Any]:
    """The command for the instance's node (or the node `workload_agent_uuid` names)."""
    fields = {"workload_agent_uuid": instance.node_uuid or "", **extra}
    return P.to_dict(P.InstanceCommand(instance_uuid=instance.id, **fields))


def delete_instance(session: Session, instance: Instance) -> None:
    """Gone for the API at once; the node is told, and reports confirm or retry it."""
    states.check("delete", instance.vm_state, None)
    # As in Nova, a server holds its quota until it is deleted, in error or not.
    if not instance.deleted:
        quota.release(session, instance.project_id, quota_deltas(instance))
    instance.deleted = True
    instance.task_state = states.DELETING
    instance.terminated_at = utcnow()
    enqueue(session, instance.id, "DELETE", instance_command(instance))
    if instance.resize_source_node:
        # The copy a move left behind goes too.
        source = instance.resize_source_node
        enqueue(
            session, instance.id, "DELETE", instance_command(instance, workload_agent_uuid=source)
        )
    if instance.new_flavor or instance.old_flavor:
        # As Nova, a server deleted while it waits for a verdict has its resize confirmed.
        ended = migrations.CONFIRMED if instance.vm_state == states.RESIZED else migrations.ERROR
        migrations.advance(session, instance, ended)


def stop_instance(session: Session, instance: Instance) -> None:
    states.check("stop", instance.vm_state, instance.task_state)
    instance.task_state = states.POWERING_OFF
    enqueue(session, instance.id, "STOP", instance_command(instance))


def start_instance(session: Session, instance: Instance) -> None:
    states.check("start", instance.vm_state, instance.task_state)
    instance.task_state = states.POWERING_ON
    enqueue(session, instance.id, "RESTART", instance_command(instance))


def reboot_instance(session: Session, instance: Instance, hard: bool = False) -> None:
    states.check("reboot", instance.vm_state, instance.task_state)
    instance.task_state = states.REBOOTING_HARD if hard else states.REBOOTING
    enqueue(
        session,
        instance.id,
        "RESTART",
        instance_command(instance, reboot="hard" if hard else "soft"),
    )


def attach_volume(session: Session, instance: Instance, volume_id: str, device: str = "") -> None:
    if instance.vm_state not in (states.ACTIVE, states.STOPPED):
        raise errors.Conflict(f"Cannot attach a volume while the instance is {instance.vm_state}")
    enqueue(
        session,
        instance.id,
        "ATTACH_VOLUME",
        P.to_dict(
            P.VolumeCommand(
                instance_uuid=instance.id,
                volume_uuid=volume_id,
                workload_agent_uuid=instance.node_uuid or "",
                device=device,
            )
        ),
    )


def detach_volume(session: Session, instance: Instance, volume_id: str) -> None:
    enqueue(
        session,
        instance.id,
        "DETACH_VOLUME",
        P.to_dict(
            P.VolumeCommand(
                instance_uuid=instance.id,
                volume_uuid=volume_id,
                workload_agent_uuid=instance.node_uuid or "",
            )
        ),
    )


def _instance_action(
    session: Session, instance: Instance, action: str, task: str, command: str
) -> None:
    states.check(action, instance.vm_state, instance.task_state, instance.id)
    instance.task_state = task
    enqueue(session, instance.id, command, instance_command(instance))


def pause_instance(session: Session, instance: Instance) -> None:
    _instance_action(session, instance, "pause", states.PAUSING, "PAUSE")


def unpause_instance(session: Session, instance: Instance) -> None:
    _instance_action(session, instance, "unpause", states.UNPAUSING, "UNPAUSE")


def suspend_instance(session: Session, instance: Instance) -> None:
    _instance_action(session, instance, "suspend", states.SUSPENDING, "SUSPEND")


def resume_instance(session: Session, instance: Instance) -> None:
    _instance_action(session, instance, "resume", states.RESUMING, "RESUME")


def rebuild_instance(
    session: Session,
    instance: Instance,
    image_id: str,
    name: str,
    metadata: Mapping[str, str],
    user_data: str,
) -> None:
    """The node recreates the workload from `image_id`; the instance keeps its id,
    node, addresses and flavor, and the START it is re-created from follows."""
    states.check("rebuild", instance.vm_state, instance.task_state, instance.id)
    if instance.node_uuid is None:
        # In error without ever having run anywhere: no node to rebuild it (Nova's 409).
        raise errors.Conflict(f"Instance {instance.id} is not ready")
    instance.image_id = image_id
    instance.name = name
    if instance.start_payload:
        instance.start_payload = {
            **instance.start_payload,
            "image_uuid": image_id,
            "name": name,
            "metadata": dict(metadata),
            "user_data": user_data,
        }
    instance.task_state = states.REBUILDING
    rebuild = P.Rebuild(
        instance_uuid=instance.id,
        image_uuid=image_id,
        workload_agent_uuid=instance.node_uuid or "",
        name=name,
        metadata=dict(metadata),
        user_data=user_data,
    )
    enqueue(session, instance.id, "REBUILD", P.to_dict(rebuild))


# -- flavors and resizes ---------------------------------------------------------------


def requirements_of(flavor: Mapping[str, Any]) -> P.Requirements:
    return P.Requirements(
        mem_mb=flavor["ram"], vcpus=flavor["vcpus"], disk_mb=flavor["disk"] * 1024
    )


def current_flavor(session: Session, instance: Instance) -> dict[str, Any]:
    """The flavor the instance has now; instances made by the core alone have only
    their resources."""
    attrs = session.get(ServerAttributes, instance.id)
    if attrs is not None and attrs.flavor:
        return {**attrs.flavor, "id": attrs.flavor_id}
    return {
        "id": attrs.flavor_id if attrs is not None else "",
        "name": "",
        "ram": instance.mem_mb,
        "vcpus": instance.vcpus,
        "disk": instance.disk_gb,
    }


def set_flavor(session: Session, instance: Instance, flavor: Mapping[str, Any]) -> None:
    """The instance now has `flavor`: its resources, the flavor the API shows, and the
    requirements it would be re-created with."""
    instance.mem_mb = flavor["ram"]
    instance.vcpus = flavor["vcpus"]
    instance.disk_gb = flavor["disk"]
    attrs = session.get(ServerAttributes, instance.id)
    if attrs is not None:
        attrs.flavor_id = flavor["id"]
        attrs.flavor = {k: v for k, v in flavor.items() if k != "id"}
    if instance.start_payload:
        required = P.to_dict(requirements_of(flavor))
        instance.start_payload = {
            **instance.start_payload,
            "requirements": {**instance.start_payload.get("requirements", {}), **required},
        }


# What a moving instance must share a node with and must avoid (see server_groups).
Constraints = tuple[list[str], list[str]]


def resize_instance(
    session: Session,
    instance: Instance,
    flavor: Mapping[str, Any],
    limits: Mapping[str, int],
    constraints: Constraints | None = None,
) -> None:
    """Ask the instance's node to apply `flavor`; what it adds is reserved now, in this
    transaction, or the resize is refused (403). `constraints` hold if it must move."""
    _check_resizable(instance, "resize")
    current = current_flavor(session, instance)
    quota.reserve(session, instance.project_id, excess(flavor, current), limits)
    _resize(session, instance, migrations.RESIZE, flavor, current, constraints)


def migrate_instance(
    session: Session,
    instance: Instance,
    node_uuid: str = "",
    constraints: Constraints | None = None,
) -> None:
    """Move the instance to another node (`node_uuid`, or one the scheduler picks) with
    its flavor: a resize that always moves, confirmed or reverted the same way."""
    _check_resizable(instance, "migrate")
    if not instance.start_payload:
        raise errors.Conflict(f"Cannot 'migrate' instance {instance.id}: it was never placed")
    current = current_flavor(session, instance)
    _resize(session, instance, migrations.MIGRATION, current, current, constraints, node_uuid)


def _check_resizable(instance: Instance, action: str) -> None:
    states.check(action, instance.vm_state, instance.task_state, instance.id)
    if instance.new_flavor is not None or instance.resize_source_node:
        # Its quota is still reserved and its event still due, or the copy a move left
        # is still being deleted: one resize at a time.
        raise errors.Conflict(f"Cannot '{action}' instance {instance.id}: a resize is pending")


def _resize(
    session: Session,
    instance: Instance,
    kind: str,
    flavor: Mapping[str, Any],
    current: Mapping[str, Any],
    constraints: Constraints | None,
    node_uuid: str = "",
) -> None:
    migration_id = migrations.begin(session, instance, kind, current, flavor)
    instance.new_flavor = dict(flavor)
    instance.task_state = states.RESIZE_PREP
    resize = P.Resize(
        instance_uuid=instance.id,
        requirements=requirements_of(flavor),
        current=requirements_of(current),
        workload_agent_uuid=instance.node_uuid or "",
        start=_moved_start(instance, flavor, node_uuid, constraints, migration_id)
        if instance.start_payload
        else None,
        move=kind == migrations.MIGRATION,
        attempt=migration_id,
    )
    enqueue(session, instance.id, "RESIZE", P.to_dict(resize))


def _moved_start(
    instance: Instance,
    flavor: Mapping[str, Any],
    node_uuid: str,
    constraints: Constraints | None,
    migration_id: int,
) -> P.Start:
    """The START that recreates the instance elsewhere with `flavor` (on `node_uuid` when
    named). The zone it asked for and its server group rules (`constraints`, as they are
    now) still hold; a host it was created on by name does not (as in Nova, a forced
    host is for the boot)."""
    start = P.from_dict(P.Start, instance.start_payload)
    sized = requirements_of(flavor)
    same, different = constraints or (
        start.requirements.same_node_as,
        start.requirements.different_node_from,
    )
    return dataclasses.replace(
        start,
        requirements=dataclasses.replace(
            start.requirements,
            mem_mb=sized.mem_mb,
            vcpus=sized.vcpus,
            disk_mb=sized.disk_mb,
            node_id=node_uuid,
            excluded_nodes=[],
            same_node_as=list(same),
            different_node_from=list(different),
        ),
        attempt=migration_id,
    )


def confirm_resize(session: Session, instance: Instance) -> None:
    """Keep the new flavor: the quota the old one held beyond it is freed, and the node
    may drop what a revert would have needed (or, when the instance moved, the node it
    left deletes the copy it kept)."""
    states.check("confirmResize", instance.vm_state, instance.task_state, instance.id)
    old = instance.old_flavor or current_flavor(session, instance)
    instance.old_flavor = None
    quota.release(session, instance.project_id, excess(old, current_flavor(session, instance)))
    instance.vm_state = states.at_rest(instance.power_state)
    migrations.advance(session, instance, migrations.CONFIRMED)
    if instance.resize_source_node:
        # The node left stays recorded until it reports its copy deleted, so that its
        # reports meanwhile are never taken for the instance's (reports.instance_deleted).
        source = instance.resize_source_node
        enqueue(
            session, instance.id, "DELETE", instance_command(instance, workload_agent_uuid=source)
        )
        return
    enqueue(session, instance.id, "CONFIRM_RESIZE", instance_command(instance))


def revert_resize(session: Session, instance: Instance) -> None:
    """Ask the node to go back to the old flavor; the report of it finishes the revert.
    An instance that moved is deleted where it runs now, and the report of that brings
    it back to the node it left (reports.instance_deleted)."""
    states.check("revertResize", instance.vm_state, instance.task_state, instance.id)
    old = instance.old_flavor or current_flavor(session, instance)
    instance.task_state = states.RESIZE_REVERTING
    migrations.advance(session, instance, migrations.REVERTING)
    if instance.resize_source_node:
        enqueue(session, instance.id, "DELETE", instance_command(instance))
        return
    migration = migrations.in_flight(session, instance)
    revert = P.Resize(
        instance_uuid=instance.id,
        requirements=requirements_of(old),
        current=requirements_of(current_flavor(session, instance)),
        workload_agent_uuid=instance.node_uuid or "",
        attempt=migration.id if migration is not None else 0,
    )
    enqueue(session, instance.id, "REVERT_RESIZE", P.to_dict(revert))


# -- snapshots and the console ------------------------------------------------------------


# The snapshot actions and the task each sets (a backup is a snapshot to the node).
SNAPSHOT_TASKS = {
    "createImage": states.IMAGE_SNAPSHOT_PENDING,
    "createBackup": states.IMAGE_BACKUP,
    "shelve": states.SHELVING_IMAGE_PENDING_UPLOAD,
}


def snapshot_instance(
    session: Session,
    instance: Instance,
    image_id: str,
    upload_url: str,
    grant: str,
    action: str = "createImage",
) -> None:
    """The node copies the instance's disk and uploads it to `upload_url` with `grant`
    (the outbox row holds the grant until it is sent; it is good for this image only)."""
    states.check(action, instance.vm_state, instance.task_state, instance.id)
    if action == "shelve":
        if instance.shelved_image_id:
            # The controller deletes the last shelve's image within seconds of the
            # unshelve; the column holds one image.
            raise errors.Conflict(
                f"Cannot 'shelve' instance {instance.id}: its last shelved image is "
                "still being deleted"
            )
        instance.shelved_image_id = image_id
    instance.task_state = SNAPSHOT_TASKS[action]
    snapshot = P.Snapshot(
        instance_uuid=instance.id,
        image_uuid=image_id,
        upload_url=upload_url,
        upload_grant=grant,
        workload_agent_uuid=instance.node_uuid or "",
        power_off=action == "shelve",
    )
    enqueue(session, instance.id, "SNAPSHOT", P.to_dict(snapshot))


def offload_instance(session: Session, instance: Instance) -> None:
    """A shelved instance leaves its node: the node deletes its copy, and the report of
    that makes it SHELVED_OFFLOADED (reports.instance_deleted)."""
    instance.task_state = states.SHELVING_OFFLOADING
    enqueue(session, instance.id, "DELETE", instance_command(instance))


def unshelve_instance(
    session: Session, instance: Instance, constraints: Constraints | None = None
) -> None:
    """Start the instance again from the image its shelve kept, on any node that can
    take it (where it was created, named or not, no longer binds it; `constraints`,
    its group rules as they are now, do)."""
    states.check("unshelve", instance.vm_state, instance.task_state, instance.id)
    start = unshelve_start(instance, constraints)
    instance.task_state = states.UNSHELVING
    enqueue(session, instance.id, "START", P.to_dict(start))


def unshelve_start(instance: Instance, constraints: Constraints | None = None) -> P.Start:
    """The START of an unshelve (sent again by the controller if it was lost), with a
    number of its own: a StartFailure for an earlier one must not end this one."""
    if not instance.shelved_image_id or not instance.start_payload:
        raise errors.Conflict(f"Cannot 'unshelve' instance {instance.id}: it has no shelved image")
    instance.start_attempts += 1
    start = P.from_dict(P.Start, instance.start_payload)
    same, different = constraints or (
        start.requirements.same_node_as,
        start.requirements.different_node_from,
    )
    return dataclasses.replace(
        start,
        image_uuid=instance.shelved_image_id,
        requirements=dataclasses.replace(
            start.requirements,
            node_id="",
            excluded_nodes=[],
            same_node_as=list(same),
            different_node_from=list(different),
        ),
        node_uuid="",
        attempt=instance.start_attempts,
    )


def request_console_output(
    session: Session, instance: Instance, request_id: str, length: int | None
) -> None:
    """Ask the node for the console log's tail; its answer arrives as a ConsoleReply row."""
    if not instance.node_uuid:
        raise errors.Conflict(f"Instance {instance.id} is not ready")
    request = P.ConsoleRequest(
        instance_uuid=instance.id,
        request_id=request_id,
        length=-1 if length is None else length,
        workload_agent_uuid=instance.node_uuid,
    )
    enqueue(session, instance.id, "CONSOLE_OUTPUT", P.to_dict(request))
