"""A backend that runs nothing: for simulation, scale tests and benchmarks.

Its "hypervisor" is a directory (`<state dir>/fake`) with one JSON file per
instance, so fake instances outlive the launcher process exactly as real
domains do, and a restarted launcher re-attaches to them. Booting takes a
configurable delay. Failures can be random (a rate) or asked for: an
instance whose START metadata has `fake_fail` set to a comma-separated list
of operations (launch, image, network, start, stop, reboot, delete, attach,
detach) fails those operations, which makes every failure path testable.
"""

from __future__ import annotations

import asyncio
import json
import logging
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
)
from ciaostack.agents.state import is_safe_id, write_atomically
from ciaostack.core.config import Config
from ciaostack.core.ssntp.payloads import InstanceState, Start

LOG = logging.getLogger("ciaostack.launcher.fake")

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
        raw = start.metadata.get("fake_fail", "")
        fail = {part.strip() for part in str(raw).split(",") if part.strip()}
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
        lines = [f"fake console of {instance_uuid}"]
        for boot in range(1, record["boots"] + 1):
            lines += [f"boot {boot}: kernel up", f"boot {boot}: login prompt"]
        if record["state"] == InstanceState.STOPPED:
            lines.append("powered off")
        if length is not None:
            lines = lines[-length:] if length > 0 else []
        return "\n".join(lines) + "\n"

    async def capacity(self) -> NodeResources:
        running = sum(1 for r in self._instances.values() if r["state"] == InstanceState.RUNNING)
        load = min(float(self.resources.vcpus), 0.1 * running)
        return NodeResources(
            self.resources.mem_mb, self.resources.disk_mb, self.resources.vcpus, round(load, 2)
        )


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
