"""A backend that runs nothing: for simulation, scale tests and benchmarks.

Its "hypervisor" is a directory (`<state dir>/fake`) with one JSON file per
instance, so fake instances outlive the launcher process exactly as real
domains do, and a restarted launcher re-attaches to them. Booting takes a
configurable delay. Failures can be random (a rate) or asked for: an
instance whose START metadata (or, once rebuilt, its REBUILD metadata) has
`fake_fail` set to a comma-separated list of operations (launch, image,
network, start, stop, reboot, delete, attach, detach, pause, unpause, suspend,
resume, rebuild, resize, confirm_resize, revert_resize, snapshot, console) fails
those operations, which makes every failure path testable.

A snapshot is a small deterministic raw disk (the same instance and image
always give the same bytes); the console log is a guest's boot messages, once
per boot, and its tail is taken as Nova takes it (`console_tail`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ciaostack.agents.backends import (
    Backend,
    BackendError,
    ImageError,
    InstanceNotFound,
    NetworkError,
    NodeResources,
    Usage,
    console_tail,
)
from ciaostack.agents.state import is_safe_id, write_atomically
from ciaostack.core.config import Config
from ciaostack.core.ssntp.payloads import InstanceState, Requirements, Start

LOG = logging.getLogger("ciaostack.launcher.fake")

_POWERED_OFF = "[   61.250000] reboot: Power down"
#: Bytes of a fake snapshot: a text header naming the instance and image, then zeros.
SNAPSHOT_SIZE = 64 * 1024

_CREATE_FAILURES: dict[str, type[BackendError]] = {
    "launch": BackendError,
    "image": ImageError,
    "network": NetworkError,
}


class FakeBackend(Backend):
    name = "fake"

    def __init__(
        self,
        world: Path,
        resources: NodeResources,
        boot_delay: float = 0.05,
        failure_rate: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("fake failure rate must be between 0 and 1")
        self.world = world
        self.resources = resources
        self.boot_delay = boot_delay
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()
        world.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._instances: dict[str, dict[str, Any]] = {}

    # -- the fake world on disk -------------------------------------------------------------

    def _path(self, instance_uuid: str) -> Path:
        if not is_safe_id(instance_uuid):
            raise InstanceNotFound(f"no instance {instance_uuid!r}")
        return self.world / f"{instance_uuid}.json"

    def _save(self, instance_uuid: str, record: dict[str, Any]) -> None:
        write_atomically(self._path(instance_uuid), record, fsync=False)
        self._instances[instance_uuid] = record

    def _get(self, instance_uuid: str) -> dict[str, Any]:
        record = self._instances.get(instance_uuid)
        if record is None:
            raise InstanceNotFound(f"no instance {instance_uuid}")
        return record

    def _maybe_fail(self, record: dict[str, Any], operation: str) -> None:
        if operation in record["fail"]:
            raise BackendError(f"fake {operation} failure requested by the instance's metadata")

    async def _boot(self, record: dict[str, Any]) -> None:
        await asyncio.sleep(self.boot_delay)
        record["boots"] += 1

    # -- the interface ------------------------------------------------------------------------

    async def create(self, start: Start) -> None:
        existing = self._instances.get(start.instance_uuid)
        if existing is not None:
            if existing["state"] != InstanceState.RUNNING:
                await self.start(start.instance_uuid)
            return
        fail = _failures(start)
        await asyncio.sleep(self.boot_delay)
        for operation, error in _CREATE_FAILURES.items():
            if operation in fail:
                raise error(f"fake {operation} failure requested by the instance's metadata")
        if self.failure_rate and self.rng.random() < self.failure_rate:
            raise BackendError("fake launch failure (random, per the configured rate)")
        req = start.requirements
        self._save(
            start.instance_uuid,
            {
                "state": InstanceState.RUNNING.value,
                "image": start.image_uuid,
                "mem_mb": req.mem_mb,
                "disk_mb": req.disk_mb,
                "vcpus": req.vcpus,
                "volumes": {},
                "fail": sorted(fail),
                "boots": 1,
            },
        )

    async def start(self, instance_uuid: str) -> None:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "start")
        if record["state"] != InstanceState.RUNNING:
            await self._boot(record)
            record["state"] = InstanceState.RUNNING.value
            self._save(instance_uuid, record)

    async def stop(self, instance_uuid: str) -> None:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "stop")
        if record["state"] != InstanceState.STOPPED:
            record["state"] = InstanceState.STOPPED.value
            self._save(instance_uuid, record)

    async def reboot(self, instance_uuid: str, hard: bool) -> None:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "reboot")
        await self._boot(record)
        record["state"] = InstanceState.RUNNING.value
        self._save(instance_uuid, record)

    async def delete(self, instance_uuid: str) -> None:
        record = self._instances.get(instance_uuid)
        if record is None:
            return
        self._maybe_fail(record, "delete")
        self._path(instance_uuid).unlink(missing_ok=True)
        del self._instances[instance_uuid]

    async def attach_volume(self, instance_uuid: str, volume_uuid: str, device: str) -> None:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "attach")
        volumes = record["volumes"]
        if volume_uuid not in volumes:
            volumes[volume_uuid] = device or f"/dev/vd{chr(ord('b') + len(volumes))}"
            self._save(instance_uuid, record)

    async def detach_volume(self, instance_uuid: str, volume_uuid: str) -> None:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "detach")
        if record["volumes"].pop(volume_uuid, None) is not None:
            self._save(instance_uuid, record)

    async def _power(
        self, instance_uuid: str, operation: str, source: InstanceState, target: InstanceState
    ) -> None:
        """Move a fake instance from `source` to `target` (already there: nothing to do)."""
        record = self._get(instance_uuid)
        self._maybe_fail(record, operation)
        if record["state"] == target:
            return
        if record["state"] != source:
            raise BackendError(f"cannot {operation} an instance that is {record['state']}")
        if target is InstanceState.RUNNING:
            await asyncio.sleep(self.boot_delay)
        record["state"] = target.value
        self._save(instance_uuid, record)

    async def pause(self, instance_uuid: str) -> None:
        await self._power(instance_uuid, "pause", InstanceState.RUNNING, InstanceState.PAUSED)

    async def unpause(self, instance_uuid: str) -> None:
        await self._power(instance_uuid, "unpause", InstanceState.PAUSED, InstanceState.RUNNING)

    async def suspend(self, instance_uuid: str) -> None:
        await self._power(instance_uuid, "suspend", InstanceState.RUNNING, InstanceState.SUSPENDED)

    async def resume(self, instance_uuid: str) -> None:
        await self._power(instance_uuid, "resume", InstanceState.SUSPENDED, InstanceState.RUNNING)

    async def rebuild(self, start: Start) -> None:
        record = self._instances.get(start.instance_uuid)
        if record is None:
            await self.create(start)
            return
        # The failures asked for follow the metadata the rebuild carries.
        record["fail"] = sorted(_failures(start))
        self._maybe_fail(record, "rebuild")
        await self._boot(record)
        record["image"] = start.image_uuid
        record["state"] = InstanceState.RUNNING.value
        self._save(start.instance_uuid, record)

    def _set_size(self, record: dict[str, Any], requirements: Requirements) -> None:
        record["mem_mb"] = requirements.mem_mb
        record["vcpus"] = requirements.vcpus
        record["disk_mb"] = requirements.disk_mb

    async def resize(self, instance_uuid: str, requirements: Requirements) -> None:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "resize")
        record.setdefault(
            "resized_from",
            {"mem_mb": record["mem_mb"], "vcpus": record["vcpus"], "disk_mb": record["disk_mb"]},
        )
        self._set_size(record, requirements)
        if record["state"] == InstanceState.RUNNING:
            await self._boot(record)
        self._save(instance_uuid, record)

    async def confirm_resize(self, instance_uuid: str) -> None:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "confirm_resize")
        if record.pop("resized_from", None) is not None:
            self._save(instance_uuid, record)

    async def revert_resize(self, instance_uuid: str, requirements: Requirements) -> None:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "revert_resize")
        record.pop("resized_from", None)
        self._set_size(record, requirements)
        if record["state"] == InstanceState.RUNNING:
            await self._boot(record)
        self._save(instance_uuid, record)

    async def snapshot(self, instance_uuid: str, target: Path) -> str:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "snapshot")
        header = f"ciaostack fake disk\ninstance {instance_uuid}\nimage {record.get('image', '')}\n"
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            tmp.write_bytes(header.encode().ljust(SNAPSHOT_SIZE, b"\0"))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return "raw"

    async def stats(self) -> dict[str, Usage]:
        usage: dict[str, Usage] = {}
        for instance_uuid, record in self._instances.items():
            if record["state"] != InstanceState.RUNNING:
                usage[instance_uuid] = Usage()
                continue
            usage[instance_uuid] = Usage(
                memory_mb=int(record["mem_mb"] * self.rng.uniform(0.3, 0.8)),
                disk_mb=int(record["disk_mb"] * self.rng.uniform(0.05, 0.4)),
                cpu_percent=self.rng.randint(1, 60),
            )
        return usage

    async def reattach(self, instance_uuids: Collection[str]) -> dict[str, InstanceState]:
        found: dict[str, InstanceState] = {}
        for instance_uuid in instance_uuids:
            try:
                record = json.loads(self._path(instance_uuid).read_text(encoding="utf-8"))
            except (FileNotFoundError, InstanceNotFound):
                continue
            except ValueError as exc:
                LOG.error("fake instance=%s unreadable: %s", instance_uuid, exc)
                continue
            self._instances[instance_uuid] = record
            found[instance_uuid] = InstanceState(record["state"])
        return found

    async def console_output(self, instance_uuid: str, length: int | None = None) -> str:
        record = self._get(instance_uuid)
        self._maybe_fail(record, "console")
        return console_tail("\n".join(_console_log(instance_uuid, record)), length)

    async def capacity(self) -> NodeResources:
        running = sum(1 for r in self._instances.values() if r["state"] == InstanceState.RUNNING)
        load = min(float(self.resources.vcpus), 0.1 * running)
        return NodeResources(
            self.resources.mem_mb, self.resources.disk_mb, self.resources.vcpus, round(load, 2)
        )


def _failures(start: Start) -> set[str]:
    raw = start.metadata.get("fake_fail", "")
    return {part.strip() for part in str(raw).split(",") if part.strip()}


def _console_log(instance_uuid: str, record: dict[str, Any]) -> list[str]:
    """What a small Linux guest prints on its serial console, once per boot; the log
    ends at the login prompt (no newline), or with the power-down of a stopped one."""
    lines: list[str] = []
    for boot in range(1, record["boots"] + 1):
        lines += [
            f"[    0.000000] Linux version 6.1.0-fake (ciaostack fake backend) boot {boot}",
            "[    0.000000] Command line: root=/dev/vda1 ro console=ttyS0",
            f"[    0.004215] Memory: {record['mem_mb']}M available",
            f"[    0.011873] smpboot: Allowing {record['vcpus']} CPUs",
            "[    1.310552] EXT4-fs (vda1): mounted filesystem with ordered data mode",
            "[    2.021004] systemd[1]: Reached target Multi-User System.",
            f"[    2.480117] cloud-init[412]: instance {instance_uuid} up "
            f"(image {record.get('image', '')})",
            f"instance-{instance_uuid[:8]} login: ",
        ]
    if record["state"] == InstanceState.STOPPED:
        lines.append(_POWERED_OFF)
    return lines


def from_config(conf: Config, state_dir: Path) -> FakeBackend:
    return FakeBackend(
        state_dir / "fake",
        NodeResources(
            mem_mb=conf.get("launcher", "fake_mem_mb"),
            disk_mb=conf.get("launcher", "fake_disk_mb"),
            vcpus=conf.get("launcher", "fake_vcpus"),
        ),
        boot_delay=conf.get("launcher", "fake_boot_delay"),
        failure_rate=conf.get("launcher", "fake_failure_rate"),
    )
