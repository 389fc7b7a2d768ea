"""What the compute APIs ask of the core: plain functions on a unit of work.

Each one changes the instance row and writes the outbox row for its command
in the caller's transaction, so a command is sent if and only if the change
it belongs to was committed. The controller process sends outbox rows; the
launcher's reports then settle the state.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ciaostack.core import errors, quota
from ciaostack.core.controller import states
from ciaostack.core.db.models import Instance, Outbox, utcnow
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
    return {"instances": 1, "cores": instance.vcpus, "ram": instance.mem_mb}


def counts_toward_quota(instance: Instance) -> bool:
    """Deleted instances and those that ended in error hold no quota."""
    return not instance.deleted and instance.vm_state != states.ERROR


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
    session: Session, spec: InstanceSpec, count: int = 1, limits: Mapping[str, int] | None = None
) -> list[Instance]:
    """BUILD rows, their quota and their START commands, all or nothing."""
    if count < 1:
        raise errors.BadRequest("count must be at least 1")
    created: list[Instance] = []
    for index in range(count):
        name = spec.name if count == 1 else f"{spec.name}-{index + 1}"
        instance = Instance(
            id=str(uuid.uuid4()),
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
            availability_zone=spec.availability_zone,
            start_attempts=1,
        )
        instance.start_payload = P.to_dict(
            start_payload(instance, dataclasses.replace(spec, name=name))
        )
        created.append(instance)
    # One reservation for the lot: all of them fit, or none is created.
    deltas = {k: v * count for k, v in quota_deltas(created[0]).items()}
    quota.reserve(session, spec.project_id, deltas, limits or {})
    session.add_all(created)
    for instance in created:
        enqueue(session, instance.id, "START", instance.start_payload, wake=False)
    wake_controllers(session)
    session.flush()
    return created


def _command(instance: Instance, **extra: str) -> dict[str, Any]:
    return P.to_dict(
        P.InstanceCommand(
            instance_uuid=instance.id, workload_agent_uuid=instance.node_uuid or "", **extra
        )
    )


def delete_instance(session: Session, instance: Instance) -> None:
    """Gone for the API at once; the node is told, and reports confirm or retry it."""
    states.check("delete", instance.vm_state, None)
    if counts_toward_quota(instance):
        quota.release(session, instance.project_id, quota_deltas(instance))
    instance.deleted = True
    instance.task_state = states.DELETING
    instance.terminated_at = utcnow()
    enqueue(session, instance.id, "DELETE", _command(instance))


def stop_instance(session: Session, instance: Instance) -> None:
    states.check("stop", instance.vm_state, instance.task_state)
    instance.task_state = states.POWERING_OFF
    enqueue(session, instance.id, "STOP", _command(instance))


def start_instance(session: Session, instance: Instance) -> None:
    states.check("start", instance.vm_state, instance.task_state)
    instance.task_state = states.POWERING_ON
    enqueue(session, instance.id, "RESTART", _command(instance))


def reboot_instance(session: Session, instance: Instance, hard: bool = False) -> None:
    states.check("reboot", instance.vm_state, instance.task_state)
    instance.task_state = states.REBOOTING_HARD if hard else states.REBOOTING
    enqueue(session, instance.id, "RESTART", _command(instance, reboot="hard" if hard else "soft"))


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
