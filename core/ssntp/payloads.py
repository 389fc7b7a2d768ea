"""Every SSNTP message's payload, in one module (as ciao's `payloads` package).

Each payload is a frozen dataclass; `parse(frame)` turns a frame's YAML
mapping into the right class and refuses missing fields, wrong types and
unknown enumerations with PayloadError, so no component ever handles a
half-formed message. Unknown extra keys are ignored (newer peers may add some).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import orjson

from ciaostack.core.ssntp.frames import Command, Error, Event, Frame, Status, Type


class PayloadError(ValueError):
    pass


class StartFailureReason(enum.StrEnum):
    FULL_CLOUD = "full_cloud"
    FULL_CN = "full_cn"
    NODE_MAINTENANCE = "node_maintenance"
    NO_CN = "no_cn"
    NO_NET_CN = "no_net_cn"
    INVALID_PAYLOAD = "invalid_payload"
    INVALID_DATA = "invalid_data"
    ALREADY_RUNNING = "already_running"
    INSTANCE_EXISTS = "instance_exists"
    IMAGE_FAILURE = "image_failure"
    LAUNCH_FAILURE = "launch_failure"
    NETWORK_FAILURE = "network_failure"


class InstanceState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    EXITED = "exited"
    ERROR = "error"


class NodeType(enum.StrEnum):
    COMPUTE = "compute"
    NETWORK = "network"


class NodeStatus(enum.StrEnum):
    READY = "READY"
    FULL = "FULL"
    OFFLINE = "OFFLINE"
    MAINTENANCE = "MAINTENANCE"


# -- shared pieces ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Networking:
    mac: str
    ip: str = ""
    subnet: str = ""
    gateway: str = ""
    network_id: str = ""


@dataclasses.dataclass(frozen=True)
class StorageResource:
    id: str
    boot: bool = False
    ephemeral: bool = False
    size_gb: int = 0
    device: str = ""


@dataclasses.dataclass(frozen=True)
class Requirements:
    mem_mb: int
    vcpus: int
    disk_mb: int = 0
    node_id: str = ""
    network_node: bool = False
    availability_zone: str = ""
    # Instances this one must share a node with, or must avoid (server groups, hints).
    same_node_as: list[str] = dataclasses.field(default_factory=list)
    different_node_from: list[str] = dataclasses.field(default_factory=list)
    # Nodes that already refused this instance (the controller's retries).
    excluded_nodes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class InstanceStat:
    instance_uuid: str
    state: InstanceState
    memory_usage_mb: int = 0
    disk_usage_mb: int = 0
    cpu_usage: int = 0
    power_state: int = 0
    volumes: list[str] = dataclasses.field(default_factory=list)


# -- handshake ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Connect:
    hostname: str = ""


@dataclasses.dataclass(frozen=True)
class Connected:
    """The cluster configuration the server hands every new peer."""

    heartbeat_interval: float = 5.0
    max_payload: int = 1 << 20
    cluster: dict[str, Any] = dataclasses.field(default_factory=dict)


# -- commands ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Start:
    instance_uuid: str
    tenant_uuid: str
    image_uuid: str
    requirements: Requirements
    vm_type: str = "qemu"
    name: str = ""
    firmware: str = ""
    networking: Networking | None = None
    storage: list[StorageResource] = dataclasses.field(default_factory=list)
    user_data: str = ""
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Set by the scheduler when it forwards START to the chosen node.
    node_uuid: str = ""
    attempt: int = 1
    # A resize that moves the instance: the node it comes from, which keeps its copy
    # (stopped) until the resize is confirmed or reverted.
    resize_from: str = ""


@dataclasses.dataclass(frozen=True)
class InstanceCommand:
    """STOP, DELETE, RESTART, PAUSE, UNPAUSE, SUSPEND, RESUME, CONFIRM_RESIZE: an
    instance on the node that holds it."""

    instance_uuid: str
    workload_agent_uuid: str = ""
    reboot: str = ""  # RESTART of a running instance: "soft" or "hard"


@dataclasses.dataclass(frozen=True)
class Rebuild:
    """REBUILD: recreate the instance's workload from another image (or the same one
    afresh), keeping its identity, addresses and volumes."""

    instance_uuid: str
    image_uuid: str
    workload_agent_uuid: str = ""
    name: str = ""
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    user_data: str = ""


@dataclasses.dataclass(frozen=True)
class Resize:
    """RESIZE and REVERT_RESIZE: the instance is to have `requirements` where it has
    `current`. What it grows by must fit on its node, or, for a RESIZE that carries
    `start` (the instance's START with the new requirements), the scheduler starts it
    on another node with `start.resize_from` naming the node it leaves (always, when
    `move` is set)."""

    instance_uuid: str
    requirements: Requirements
    current: Requirements
    workload_agent_uuid: str = ""
    start: Start | None = None
    # A cold migration: move with `start` even where the instance's node has room.
    move: bool = False
    # The resize's number (its migration's id; 0 from a controller that predates it):
    # the node's answer carries it back, so that a late answer to an earlier resize of
    # the same instance ends nothing.
    attempt: int = 0


# The reason the scheduler gives for a command whose instance is on no connected node.
NO_NODE = "no_node"
# Reasons of a node's console-output failure that mean it has no console to read
# (the API's 404), as opposed to a node that is gone or silent.
NO_INSTANCE = "no_instance"
CONSOLE_FAILURE = "console_failure"

# How a node presents a SNAPSHOT's upload: the grant and the formats it produced ride in
# these headers of an HTTP PUT of the disk to `upload_url` (see docs/ssntp.md).
UPLOAD_GRANT_HEADER = "X-Upload-Grant"
UPLOAD_DISK_FORMAT_HEADER = "X-Image-Disk-Format"
UPLOAD_CONTAINER_FORMAT_HEADER = "X-Image-Container-Format"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """SNAPSHOT: copy the instance's disk and upload it to `upload_url`, presenting
    `upload_grant` (a short-lived credential good for that one image only)."""

    instance_uuid: str
    image_uuid: str
    upload_url: str
    # A credential: kept out of reprs, so out of any log line that shows the payload.
    upload_grant: str = dataclasses.field(repr=False)
    workload_agent_uuid: str = ""
    # A shelve: the guest is powered off first, so that the disk copied is consistent
    # (as Nova's shelve does); the node stops it before the copy, in the same job.
    power_off: bool = False


@dataclasses.dataclass(frozen=True)
class ConsoleRequest:
    """CONSOLE_OUTPUT: the last `length` lines of the console log (-1: all of it),
    answered by an event carrying the same `request_id`."""

    instance_uuid: str
    request_id: str
    length: int = -1
    workload_agent_uuid: str = ""


@dataclasses.dataclass(frozen=True)
class Evacuate:
    workload_agent_uuid: str
    next_state: str = "maintenance"


@dataclasses.dataclass(frozen=True)
class Restore:
    workload_agent_uuid: str


@dataclasses.dataclass(frozen=True)
class VolumeCommand:
    instance_uuid: str
    volume_uuid: str
    workload_agent_uuid: str = ""
    device: str = ""


@dataclasses.dataclass(frozen=True)
class PublicIP:
    concentrator_uuid: str
    tenant_uuid: str
    instance_uuid: str
    public_ip: str
    private_ip: str
    vnic_mac: str = ""


@dataclasses.dataclass(frozen=True)
class Configure:
    config: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Stats:
    node_uuid: str
    status: NodeStatus
    mem_total_mb: int
    mem_available_mb: int
    disk_total_mb: int
    disk_available_mb: int
    vcpus_total: int
    vcpus_available: int
    load: float = 0.0
    hostname: str = ""
    instances: list[InstanceStat] = dataclasses.field(default_factory=list)
    # The node's zone, for the controllers (the scheduler has it from READY); "" from a
    # launcher that predates the field.
    availability_zone: str = ""


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    pass


# -- statuses -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ready:
    node_uuid: str
    mem_total_mb: int
    mem_available_mb: int
    disk_total_mb: int
    disk_available_mb: int
    vcpus_total: int
    vcpus_available: int
    load: float = 0.0
    hostname: str = ""
    node_type: NodeType = NodeType.COMPUTE
    availability_zone: str = "nova"
    networks: list[str] = dataclasses.field(default_factory=list)
    # Instances the node runs, so a restarted scheduler learns placements again.
    instances: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class NodeOnly:
    """FULL, OFFLINE, MAINTENANCE."""

    node_uuid: str = ""


# -- events ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InstanceEvent:
    """InstanceDeleted, InstanceStopped, InstanceRebuilt, InstanceResized, ResizeReverted."""

    instance_uuid: str
    node_uuid: str = ""
    # InstanceResized and ResizeReverted: the `attempt` of the RESIZE (or of the START
    # of a move) answered; 0 for the other events.
    attempt: int = 0


@dataclasses.dataclass(frozen=True)
class SnapshotEvent:
    """SnapshotUploaded: the image has the instance's disk."""

    instance_uuid: str
    image_uuid: str
    node_uuid: str = ""


@dataclasses.dataclass(frozen=True)
class ConsoleOutput:
    """ConsoleOutput: the answer to a CONSOLE_OUTPUT command."""

    instance_uuid: str
    request_id: str
    output: str = ""
    node_uuid: str = ""


@dataclasses.dataclass(frozen=True)
class NodeEvent:
    node_uuid: str
    node_type: NodeType = NodeType.COMPUTE
    hostname: str = ""


@dataclasses.dataclass(frozen=True)
class TenantEvent:
    tenant_uuid: str
    agent_uuid: str = ""
    agent_ip: str = ""
    tenant_subnet: str = ""
    concentrator_uuid: str = ""
    concentrator_ip: str = ""
    subnet_key: int = 0


@dataclasses.dataclass(frozen=True)
class ConcentratorAdded:
    instance_uuid: str
    tenant_uuid: str
    concentrator_ip: str
    concentrator_mac: str = ""


@dataclasses.dataclass(frozen=True)
class TraceReport:
    frames: list[dict[str, Any]] = dataclasses.field(default_factory=list)


# -- errors -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StartFailure:
    instance_uuid: str
    reason: StartFailureReason
    message: str = ""
    node_uuid: str = ""
    attempt: int = 1


@dataclasses.dataclass(frozen=True)
class InstanceFailure:
    """StopFailure, DeleteFailure, RestartFailure and the server actions' failures."""

    instance_uuid: str
    reason: str
    message: str = ""
    # ResizeFailure and RevertResizeFailure: the `attempt` of the RESIZE answered.
    attempt: int = 0


@dataclasses.dataclass(frozen=True)
class SnapshotFailure:
    instance_uuid: str
    image_uuid: str
    reason: str
    message: str = ""


@dataclasses.dataclass(frozen=True)
class ConsoleFailure:
    instance_uuid: str
    request_id: str
    reason: str
    message: str = ""


@dataclasses.dataclass(frozen=True)
class VolumeFailure:
    instance_uuid: str
    volume_uuid: str
    reason: str
    message: str = ""


@dataclasses.dataclass(frozen=True)
class PublicIPFailure:
    instance_uuid: str
    public_ip: str = ""
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class InvalidFrame:
    frame_type: int = -1
    operand: int = -1
    message: str = ""


@dataclasses.dataclass(frozen=True)
class ConnectionError_:
    """ConnectionFailure and ConnectionAborted."""

    message: str = ""


@dataclasses.dataclass(frozen=True)
class InvalidConfiguration:
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    message: str = ""


MESSAGES: dict[tuple[Type, enum.IntEnum], type] = {
    (Type.COMMAND, Command.CONNECT): Connect,
    (Type.COMMAND, Command.START): Start,
    (Type.COMMAND, Command.STOP): InstanceCommand,
    (Type.COMMAND, Command.STATS): Stats,
    (Type.COMMAND, Command.EVACUATE): Evacuate,
    (Type.COMMAND, Command.DELETE): InstanceCommand,
    (Type.COMMAND, Command.RESTART): InstanceCommand,
    (Type.COMMAND, Command.ASSIGN_PUBLIC_IP): PublicIP,
    (Type.COMMAND, Command.RELEASE_PUBLIC_IP): PublicIP,
    (Type.COMMAND, Command.CONFIGURE): Configure,
    (Type.COMMAND, Command.ATTACH_VOLUME): VolumeCommand,
    (Type.COMMAND, Command.DETACH_VOLUME): VolumeCommand,
    (Type.COMMAND, Command.RESTORE): Restore,
    (Type.COMMAND, Command.HEARTBEAT): Heartbeat,
    (Type.COMMAND, Command.PAUSE): InstanceCommand,
    (Type.COMMAND, Command.UNPAUSE): InstanceCommand,
    (Type.COMMAND, Command.SUSPEND): InstanceCommand,
    (Type.COMMAND, Command.RESUME): InstanceCommand,
    (Type.COMMAND, Command.REBUILD): Rebuild,
    (Type.COMMAND, Command.RESIZE): Resize,
    (Type.COMMAND, Command.CONFIRM_RESIZE): InstanceCommand,
    (Type.COMMAND, Command.REVERT_RESIZE): Resize,
    (Type.COMMAND, Command.SNAPSHOT): Snapshot,
    (Type.COMMAND, Command.CONSOLE_OUTPUT): ConsoleRequest,
    (Type.STATUS, Status.CONNECTED): Connected,
    (Type.STATUS, Status.READY): Ready,
    (Type.STATUS, Status.FULL): NodeOnly,
    (Type.STATUS, Status.OFFLINE): NodeOnly,
    (Type.STATUS, Status.MAINTENANCE): NodeOnly,
    (Type.EVENT, Event.TENANT_ADDED): TenantEvent,
    (Type.EVENT, Event.TENANT_REMOVED): TenantEvent,
    (Type.EVENT, Event.INSTANCE_DELETED): InstanceEvent,
    (Type.EVENT, Event.CONCENTRATOR_INSTANCE_ADDED): ConcentratorAdded,
    (Type.EVENT, Event.PUBLIC_IP_ASSIGNED): PublicIP,
    (Type.EVENT, Event.TRACE_REPORT): TraceReport,
    (Type.EVENT, Event.NODE_CONNECTED): NodeEvent,
    (Type.EVENT, Event.NODE_DISCONNECTED): NodeEvent,
    (Type.EVENT, Event.PUBLIC_IP_UNASSIGNED): PublicIP,
    (Type.EVENT, Event.INSTANCE_STOPPED): InstanceEvent,
    (Type.EVENT, Event.INSTANCE_REBUILT): InstanceEvent,
    (Type.EVENT, Event.INSTANCE_RESIZED): InstanceEvent,
    (Type.EVENT, Event.RESIZE_REVERTED): InstanceEvent,
    (Type.EVENT, Event.SNAPSHOT_UPLOADED): SnapshotEvent,
    (Type.EVENT, Event.CONSOLE_OUTPUT): ConsoleOutput,
    (Type.ERROR, Error.INVALID_FRAME_TYPE): InvalidFrame,
    (Type.ERROR, Error.START_FAILURE): StartFailure,
    (Type.ERROR, Error.STOP_FAILURE): InstanceFailure,
    (Type.ERROR, Error.CONNECTION_FAILURE): ConnectionError_,
    (Type.ERROR, Error.DELETE_FAILURE): InstanceFailure,
    (Type.ERROR, Error.RESTART_FAILURE): InstanceFailure,
    (Type.ERROR, Error.CONNECTION_ABORTED): ConnectionError_,
    (Type.ERROR, Error.INVALID_CONFIGURATION): InvalidConfiguration,
    (Type.ERROR, Error.ATTACH_VOLUME_FAILURE): VolumeFailure,
    (Type.ERROR, Error.DETACH_VOLUME_FAILURE): VolumeFailure,
    (Type.ERROR, Error.ASSIGN_PUBLIC_IP_FAILURE): PublicIPFailure,
    (Type.ERROR, Error.UNASSIGN_PUBLIC_IP_FAILURE): PublicIPFailure,
    (Type.ERROR, Error.PAUSE_FAILURE): InstanceFailure,
    (Type.ERROR, Error.UNPAUSE_FAILURE): InstanceFailure,
    (Type.ERROR, Error.SUSPEND_FAILURE): InstanceFailure,
    (Type.ERROR, Error.RESUME_FAILURE): InstanceFailure,
    (Type.ERROR, Error.REBUILD_FAILURE): InstanceFailure,
    (Type.ERROR, Error.RESIZE_FAILURE): InstanceFailure,
    (Type.ERROR, Error.CONFIRM_RESIZE_FAILURE): InstanceFailure,
    (Type.ERROR, Error.REVERT_RESIZE_FAILURE): InstanceFailure,
    (Type.ERROR, Error.SNAPSHOT_FAILURE): SnapshotFailure,
    (Type.ERROR, Error.CONSOLE_OUTPUT_FAILURE): ConsoleFailure,
}

T = TypeVar("T")


Converter = Callable[[Any, str], Any]


def _expect(kind: type | tuple[type, ...], what: str) -> Converter:
    def convert(value: Any, where: str) -> Any:
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise PayloadError(f"{where} must be {what}")
        if not isinstance(value, kind):
            raise PayloadError(f"{where} must be {what}")
        return value

    return convert


@functools.cache
def _converter(hint: Any) -> Converter:
    """A checking converter per field type, built once: parsing runs per frame."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = _converter(next(a for a in get_args(hint) if a is not type(None)))
        return lambda value, where: None if value is None else inner(value, where)
    if origin is list:
        (item_hint,) = get_args(hint) or (Any,)
        item = _converter(item_hint)

        def convert_list(value: Any, where: str) -> list[Any]:
            if not isinstance(value, list):
                raise PayloadError(f"{where} must be a list")
            return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

        return convert_list
    if origin is dict or hint is dict:
        return _expect(dict, "a mapping")
    if hint is Any:
        return lambda value, where: value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        # A plain dict: calling the enum class to look a value up costs ten times more.
        members = {member.value: member for member in hint}

        def convert_enum(value: Any, where: str) -> enum.Enum:
            member = members.get(value) if isinstance(value, str | int) else None
            if member is None:
                raise PayloadError(f"{where}: {value!r} is not a valid {hint.__name__}")
            return member

        return convert_enum
    if dataclasses.is_dataclass(hint):
        return lambda value, where: from_dict(hint, value, where)
    if hint is float:
        number = _expect((int, float), "a number")
        return lambda value, where: float(number(value, where))
    simple = {bool: "a boolean", int: "an integer", str: "a string"}
    if hint in simple:
        return _expect(hint, simple[hint])
    raise TypeError(f"unsupported payload field type {hint!r}")


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Converter, bool], ...]:
    """(name, converter, required) per field: resolving type hints is slow, so once per class."""
    hints = get_type_hints(cls)
    return tuple(
        (
            f.name,
            _converter(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    if not isinstance(data, dict):
        raise PayloadError(f"{where or cls.__name__} must be a mapping")
    values: dict[str, Any] = {}
    for name, convert, required in _fields(cls):
        if name in data:
            values[name] = convert(data[name], f"{where}.{name}" if where else name)
        elif required:
            raise PayloadError(f"{where}.{name} is required" if where else f"{name} is required")
    return cls(**values)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """A payload class's fields (dataclasses.fields works them out on every call, and
    every frame a node sends goes through to_dict)."""
    return tuple(f.name for f in dataclasses.fields(cls))


# Values to_dict passes on as they are (an enum member's type is its enum, not str).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:  # most values: tested first, by the exact type
        return value
    if kind is list:
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value):
        return {name: _plain(getattr(value, name)) for name in _field_names(kind)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_dict(payload: Any) -> dict[str, Any]:
    """Plain YAML-safe data: enums become their values. Through orjson and back where
    that is exact (a third of the time walking the dataclasses takes in Python)."""
    try:
        text = orjson.dumps(payload)
    except TypeError:  # integers beyond 64 bits, strings that are not valid Unicode
        return _plain(payload)
    if b"null" in text:  # None, or an infinity orjson wrote as null: walked as before
        return _plain(payload)
    return orjson.loads(text)


def parse(frame: Frame) -> Any:
    """The typed payload of a frame; PayloadError if it does not fit its message."""
    cls = MESSAGES[(frame.type, frame.operand)]
    return from_dict(cls, frame.payload)


def frame(type_: Type, operand: enum.IntEnum, payload: Any = None) -> Frame:
    """Build a frame from a typed payload (checked against the message table)."""
    cls = MESSAGES[(type_, operand)]
    if payload is None:
        payload = cls()
    if not isinstance(payload, cls):
        raise TypeError(f"{type_.name}/{operand.name} carries {cls.__name__}")
    return Frame(type_, operand, to_dict(payload))
