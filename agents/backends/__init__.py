"""The interface between the launcher and whatever runs workloads on a node.

A backend turns instance operations into real work: QEMU/KVM domains through
libvirt, containers through podman, bare-metal servers through Redfish, or
nothing at all (the fake backend, for simulation and scale tests). The
launcher owns the protocol, the bookkeeping on disk and the ordering; a
backend owns only the workloads. So that a launcher can be killed and
restarted at any moment, every operation must be idempotent: the launcher
repeats an operation it is not sure completed.

The launcher never runs two operations on the same instance at once (reading
the console log excepted), but runs operations on different instances
concurrently: a backend must not block the event loop (run blocking library
calls in a thread).
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
from collections.abc import Collection
from pathlib import Path

from ciaostack.core.config import Config
from ciaostack.core.ssntp.payloads import InstanceState, Requirements, Start, StartFailureReason

# Backend name -> module that defines `from_config(conf, state_dir) -> Backend`.
BACKENDS = {
    "fake": "ciaostack.agents.backends.fake",
}


@dataclasses.dataclass(frozen=True)
class NodeResources:
    """What the node offers to instances in total, and how busy it is."""

    mem_mb: int
    disk_mb: int
    vcpus: int
    load: float = 0.0


@dataclasses.dataclass(frozen=True)
class Usage:
    """One instance's consumption, as the STATS report carries it."""

    memory_mb: int = 0
    disk_mb: int = 0
    cpu_percent: int = 0


class BackendError(Exception):
    """An operation failed; `reason` is what a failed START reports to the controller."""

    reason = StartFailureReason.LAUNCH_FAILURE


class ImageError(BackendError):
    """The image could not be fetched or prepared."""

    reason = StartFailureReason.IMAGE_FAILURE


class NetworkError(BackendError):
    """The instance's network could not be set up."""

    reason = StartFailureReason.NETWORK_FAILURE


class InstanceNotFound(BackendError):
    """The backend has no such instance (start, stop, reboot, volumes)."""


class Backend(abc.ABC):
    """What every backend implements. All methods are coroutines."""

    name: str = ""

    @abc.abstractmethod
    async def create(self, start: Start) -> None:
        """Create the instance described by a START and boot it; return once it runs.

        Must be idempotent: when the instance already exists (a launcher killed
        during a previous create repeats it), make sure it runs and return.
        On failure, raise BackendError (or ImageError, NetworkError) and leave
        nothing behind that a later `delete` could not remove. The payload's
        user data may hold secrets: never log it.
        """

    @abc.abstractmethod
    async def start(self, instance_uuid: str) -> None:
        """Power on a stopped instance; a running one is left alone."""

    @abc.abstractmethod
    async def stop(self, instance_uuid: str) -> None:
        """Power off a running, paused or suspended instance (a shelve stops any of
        them before copying the disk), keeping its disks; a stopped one is left alone."""

    @abc.abstractmethod
    async def reboot(self, instance_uuid: str, hard: bool) -> None:
        """Restart a running instance: soft asks the guest (ACPI), hard resets it.

        A stopped instance is started.
        """

    @abc.abstractmethod
    async def delete(self, instance_uuid: str) -> None:
        """Destroy the instance and its local disks; an unknown instance is not an error."""

    @abc.abstractmethod
    async def attach_volume(self, instance_uuid: str, volume_uuid: str, device: str) -> None:
        """Attach a volume (at `device` when given; the backend picks otherwise).

        Attaching a volume that is already attached succeeds.
        """

    @abc.abstractmethod
    async def detach_volume(self, instance_uuid: str, volume_uuid: str) -> None:
        """Detach a volume; detaching one that is not attached succeeds."""

    @abc.abstractmethod
    async def pause(self, instance_uuid: str) -> None:
        """Freeze a running instance in memory (its vCPUs stop, its memory stays)."""

    @abc.abstractmethod
    async def unpause(self, instance_uuid: str) -> None:
        """Let a paused instance run again from where it was frozen."""

    @abc.abstractmethod
    async def suspend(self, instance_uuid: str) -> None:
        """Save a running instance's memory to the node's disk and stop it, releasing
        its CPUs and memory until it is resumed (the launcher still counts them as held,
        so that a resume always fits)."""

    @abc.abstractmethod
    async def resume(self, instance_uuid: str) -> None:
        """Restore a suspended instance from its saved memory; it runs afterwards."""

    @abc.abstractmethod
    async def rebuild(self, start: Start) -> None:
        """Recreate the instance's workload from `start`, which names a new image (and
        maybe a new name, metadata and user data); return once it runs.

        The instance keeps its identity, MAC and address, volumes and requirements;
        its root disk is replaced by a fresh one from the image. An instance the
        backend does not have (its workload vanished) is created. Must be idempotent
        like `create`: a repeated rebuild may start from the image again.
        """

    @abc.abstractmethod
    async def resize(self, instance_uuid: str, requirements: Requirements) -> None:
        """Give the instance `requirements` (memory, vCPUs, disk) on this node, keeping
        whatever `revert_resize` needs until `confirm_resize` or `revert_resize`.

        A running instance runs afterwards (it may be restarted to apply the change),
        a stopped one stays stopped. The launcher has already checked that the node
        has room. A backend that cannot apply it (e.g. a disk cannot shrink) raises
        BackendError and leaves the instance as it was.
        """

    @abc.abstractmethod
    async def confirm_resize(self, instance_uuid: str) -> None:
        """The resize is kept: drop what a revert would have needed (an old disk).
        Nothing to drop is not an error."""

    @abc.abstractmethod
    async def revert_resize(self, instance_uuid: str, requirements: Requirements) -> None:
        """Undo the last resize: back to `requirements` (those it had before) and the
        disk it had then, in the power state it has now."""

    @abc.abstractmethod
    async def snapshot(self, instance_uuid: str, target: Path) -> str:
        """Write a point-in-time copy of the instance's root disk to the file `target`
        and return its disk format (Glance's names: raw, qcow2...).

        A running instance may be paused for the copy; it is left in the power state
        it had. Volumes are not included. On failure nothing may remain at `target`.
        """

    @abc.abstractmethod
    async def stats(self) -> dict[str, Usage]:
        """Current usage of every instance the backend runs (cheap: called every few seconds)."""

    @abc.abstractmethod
    async def reattach(self, instance_uuids: Collection[str]) -> dict[str, InstanceState]:
        """After a launcher restart: find the instances the launcher had.

        Returns the current state of each listed instance that still exists;
        an instance missing from the answer is gone. Instances must outlive the
        launcher process (a domain, a container, a server keeps running).
        """

    @abc.abstractmethod
    async def console_output(self, instance_uuid: str, length: int | None = None) -> str:
        """The instance's console log (all of it when `length` is None), or its tail as
        Nova takes it (`console_tail`).

        Read-only: the launcher may call it while another operation on the same
        instance runs (a reader must not wait behind a long snapshot).
        """

    @abc.abstractmethod
    async def capacity(self) -> NodeResources:
        """The node's totals for instances (after any host overhead) and its load."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections to the hypervisor; instances keep running."""


def console_tail(log: str, length: int | None) -> str:
    """The last `length` pieces of `log` split at newlines, joined again: Nova's rule,
    which clients count on (tempest splits an answer for 3 at newlines and expects 3
    parts, so a log ending in a newline gives 2 lines and an empty piece)."""
    if length is None:
        return log
    return "\n".join(log.split("\n")[-length:]) if length > 0 else ""


def load(name: str, conf: Config, state_dir: Path) -> Backend:
    """The backend called `name`, configured from `conf`."""
    try:
        module = importlib.import_module(BACKENDS[name])
    except KeyError as exc:
        raise ValueError(
            f"unknown launcher backend {name!r}; known: {', '.join(BACKENDS)}"
        ) from exc
    return module.from_config(conf, state_dir)
