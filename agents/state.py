"""What a launcher keeps on disk so that a restart loses nothing.

The state directory holds `node.json` (the node's UUID, which must survive
restarts so the scheduler and the controller recognise the node, and whether
the node is in maintenance) and `instances/<instance>.json`, one small file per
instance with the START payload it was created from, its last known state, the
operation in progress and the commands accepted but not yet answered. Every
file is written atomically (a temporary file, then a rename), so a launcher
killed at any moment leaves either the old version or the new one, never half
of one. Files are private (0600): the START payload may carry user data with
secrets in it, a SNAPSHOT its upload grant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any

from ciaostack.core import jsontext
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.frames import Command

LOG = logging.getLogger("ciaostack.launcher")

FORMAT_VERSION = 1
# Instance and volume ids become file names: nothing that could climb out of a directory.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


class StateError(ValueError):
    """A state file that cannot be read back (it is skipped and logged, never fatal)."""


def is_safe_id(value: str) -> bool:
    return bool(_SAFE_ID.match(value))


def write_atomically(path: Path, data: dict[str, Any], fsync: bool) -> None:
    """Replace `path` with `data` as JSON in one step (temporary file + rename).

    fsync=False skips the flush to the disk: a killed process still loses
    nothing (the page cache survives it), only a power loss could. A node writes
    this on every change of every instance: the names are plain strings (pathlib's
    objects took a third of the time) and the JSON is orjson's where exact.
    """
    target = os.fspath(path)
    head, name = os.path.split(target)
    tmp = os.path.join(head, f".{name}.tmp")
    encoded = jsontext.dumps(data).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, encoded)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


class Task:
    """The operation an instance is in the middle of; a restarted launcher resumes it."""

    NONE = ""
    CREATING = "creating"
    DELETING = "deleting"


@dataclasses.dataclass(frozen=True)
class PendingCommand:
    """A command the launcher accepted and has not answered yet: a launcher killed
    meanwhile runs it again after its restart (backend operations are idempotent)."""

    id: str
    command: str  # the Command's name
    payload: dict[str, Any]
    # RESIZE and REVERT_RESIZE: the requirements the instance had before, to go back to
    # if the backend fails (the record holds the new ones from the moment it is accepted).
    held: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> PendingCommand:
        try:
            pending = cls(**data)
        except TypeError as exc:
            raise StateError(f"bad pending command: {exc}") from exc
        if pending.command not in Command.__members__ or not isinstance(pending.payload, dict):
            raise StateError(f"bad pending command {pending.command!r}")
        return pending


@dataclasses.dataclass
class InstanceRecord:
    start: P.Start
    state: P.InstanceState = P.InstanceState.PENDING
    task: str = Task.CREATING
    volumes: list[str] = dataclasses.field(default_factory=list)
    # Accepted commands not yet answered, in the order they arrived.
    pending: list[PendingCommand] = dataclasses.field(default_factory=list)

    @property
    def instance_uuid(self) -> str:
        return self.start.instance_uuid

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "start": P.to_dict(self.start),
            "state": self.state.value,
            "task": self.task,
            "volumes": list(self.volumes),
            "pending": [p.to_json() for p in self.pending],
        }

    @classmethod
    def from_json(cls, data: Any) -> InstanceRecord:
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise StateError("unknown state file format")
        try:
            start = P.from_dict(P.Start, data["start"])
            state = P.InstanceState(data["state"])
        except (KeyError, ValueError) as exc:
            raise StateError(str(exc)) from exc
        task = data.get("task", Task.NONE)
        volumes = data.get("volumes", [])
        pending = data.get("pending", [])
        if task not in (Task.NONE, Task.CREATING, Task.DELETING) or not isinstance(volumes, list):
            raise StateError("bad task or volumes")
        if not isinstance(pending, list):
            raise StateError("bad pending commands")
        return cls(
            start=start,
            state=state,
            task=task,
            volumes=[str(v) for v in volumes],
            pending=[PendingCommand.from_json(p) for p in pending],
        )


@dataclasses.dataclass
class NodeState:
    node_uuid: uuid.UUID
    maintenance: bool = False


class StateStore:
    """The launcher's state directory (see the module docstring for its layout)."""

    def __init__(self, directory: Path, fsync: bool = True) -> None:
        self.directory = directory
        self.instances_dir = directory / "instances"
        self.fsync = fsync
        self.instances_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)

    # -- the node ---------------------------------------------------------------------------

    def load_node(self) -> NodeState:
        """The node's identity; created (and saved) on the very first start."""
        path = self.directory / "node.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return NodeState(uuid.UUID(data["node_uuid"]), bool(data.get("maintenance", False)))
        except FileNotFoundError:
            node = NodeState(uuid.uuid4())
            self.save_node(node)
            return node
        except (ValueError, KeyError, TypeError) as exc:
            # A node that silently took a new UUID would orphan every instance it runs.
            raise StateError(f"{path} is unreadable ({exc}); fix or remove it") from exc

    def save_node(self, node: NodeState) -> None:
        write_atomically(
            self.directory / "node.json",
            {"node_uuid": str(node.node_uuid), "maintenance": node.maintenance},
            self.fsync,
        )

    # -- instances --------------------------------------------------------------------------

    def _path(self, instance_uuid: str) -> Path:
        if not is_safe_id(instance_uuid):
            raise ValueError(f"unsafe instance id {instance_uuid!r}")
        return self.instances_dir / f"{instance_uuid}.json"

    def save(self, record: InstanceRecord) -> None:
        write_atomically(self._path(record.instance_uuid), record.to_json(), self.fsync)

    def remove(self, instance_uuid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(instance_uuid).unlink()

    def load_instances(self) -> dict[str, InstanceRecord]:
        """Every instance recorded; unreadable files are logged and left for an operator."""
        records: dict[str, InstanceRecord] = {}
        for path in sorted(self.instances_dir.iterdir()):
            if path.name.startswith("."):
                # A temporary file from a write that a crash interrupted.
                path.unlink(missing_ok=True)
                continue
            if path.suffix != ".json":
                continue
            try:
                record = InstanceRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, StateError) as exc:
                LOG.error("state file %s skipped: %s", path, exc)
                continue
            if path.stem != record.instance_uuid:
                LOG.error("state file %s skipped: it describes another instance", path)
                continue
            records[record.instance_uuid] = record
        return records
