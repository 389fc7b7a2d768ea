"""SSNTP frames on the wire (see docs/ssntp.md, which this module implements).

Every frame starts with an 8-byte header: Major, Minor, Type, Operand (one
byte each) and a 4-byte unsigned big-endian field. For CONNECT and CONNECTED
that field is the sender's role bitmask and the header is followed by the
sender's and the receiver's UUIDs (16 bytes each) and a 4-byte payload
length; for every other frame it is the payload length. Payloads are YAML
mappings, empty for payloadless frames.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import struct
import uuid
from typing import Any

import yaml

from ciaostack.core import jsontext

MAJOR = 0
MINOR = 1
HEADER = struct.Struct("!BBBBI")
LENGTH = struct.Struct("!I")
UUID_BYTES = 16
DEFAULT_MAX_PAYLOAD = 1 << 20

# libyaml's C loader is several times faster than the pure-Python one.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FrameError(Exception):
    """A frame that cannot be decoded: the connection that sent it is closed."""


class Type(enum.IntEnum):
    COMMAND = 0
    STATUS = 1
    # 2 is reserved: ciao's Go code numbered ERROR 2 while its README says 4.
    EVENT = 3
    ERROR = 4


class Command(enum.IntEnum):
    CONNECT = 0
    START = 1
    STOP = 2
    STATS = 3
    EVACUATE = 4
    DELETE = 5
    RESTART = 6
    ASSIGN_PUBLIC_IP = 7
    RELEASE_PUBLIC_IP = 8
    CONFIGURE = 9
    ATTACH_VOLUME = 10
    DETACH_VOLUME = 11
    RESTORE = 12
    HEARTBEAT = 13  # ciaostack: keeps idle connections proven alive
    # ciaostack: the compute API's server actions, carried to the node holding the instance
    PAUSE = 14
    UNPAUSE = 15
    SUSPEND = 16
    RESUME = 17
    REBUILD = 18
    RESIZE = 19
    CONFIRM_RESIZE = 20
    REVERT_RESIZE = 21
    SNAPSHOT = 22
    CONSOLE_OUTPUT = 23


class Status(enum.IntEnum):
    CONNECTED = 0
    READY = 1
    FULL = 2
    OFFLINE = 3
    MAINTENANCE = 4


class Event(enum.IntEnum):
    TENANT_ADDED = 0
    TENANT_REMOVED = 1
    INSTANCE_DELETED = 2
    CONCENTRATOR_INSTANCE_ADDED = 3
    PUBLIC_IP_ASSIGNED = 4
    TRACE_REPORT = 5
    NODE_CONNECTED = 6
    NODE_DISCONNECTED = 7
    PUBLIC_IP_UNASSIGNED = 8
    INSTANCE_STOPPED = 9
    # ciaostack: what the node reports once a server action is done
    INSTANCE_REBUILT = 10
    INSTANCE_RESIZED = 11
    RESIZE_REVERTED = 12
    SNAPSHOT_UPLOADED = 13
    CONSOLE_OUTPUT = 14


class Error(enum.IntEnum):
    INVALID_FRAME_TYPE = 0
    START_FAILURE = 1
    STOP_FAILURE = 2
    CONNECTION_FAILURE = 3
    DELETE_FAILURE = 4
    RESTART_FAILURE = 5
    CONNECTION_ABORTED = 6
    INVALID_CONFIGURATION = 7
    ATTACH_VOLUME_FAILURE = 8
    DETACH_VOLUME_FAILURE = 9
    ASSIGN_PUBLIC_IP_FAILURE = 10
    UNASSIGN_PUBLIC_IP_FAILURE = 11
    # ciaostack: server actions the node (or the scheduler) could not carry out
    PAUSE_FAILURE = 12
    UNPAUSE_FAILURE = 13
    SUSPEND_FAILURE = 14
    RESUME_FAILURE = 15
    REBUILD_FAILURE = 16
    RESIZE_FAILURE = 17
    CONFIRM_RESIZE_FAILURE = 18
    REVERT_RESIZE_FAILURE = 19
    SNAPSHOT_FAILURE = 20
    CONSOLE_OUTPUT_FAILURE = 21


OPERANDS: dict[Type, type[enum.IntEnum]] = {
    Type.COMMAND: Command,
    Type.STATUS: Status,
    Type.EVENT: Event,
    Type.ERROR: Error,
}


class Role(enum.IntFlag):
    SERVER = 0x1
    CONTROLLER = 0x2
    AGENT = 0x4
    SCHEDULER = 0x8
    NETAGENT = 0x10
    CNCIAGENT = 0x20


ALL_ROLES = Role(0x3F)


@dataclasses.dataclass(frozen=True)
class Frame:
    type: Type
    operand: enum.IntEnum
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Only CONNECT and CONNECTED carry these.
    role: Role = Role(0)
    source: uuid.UUID = uuid.UUID(int=0)
    destination: uuid.UUID = uuid.UUID(int=0)
    major: int = MAJOR
    minor: int = MINOR

    @property
    def is_handshake(self) -> bool:
        return is_handshake(self.type, int(self.operand))

    @property
    def name(self) -> str:
        return f"{self.type.name}/{self.operand.name}"


def is_handshake(type_: int, operand: int) -> bool:
    return (type_, operand) in (
        (Type.COMMAND, Command.CONNECT),
        (Type.STATUS, Status.CONNECTED),
    )


def dump_payload(payload: dict[str, Any]) -> bytes:
    """YAML in flow style, which is also JSON: any YAML parser reads it, and
    writing it costs a fraction of a block-style dump (orjson's where exact, else
    the standard library's). Values JSON can't spell (infinite floats) fall back
    to block YAML."""
    if not payload:
        return b""
    body = jsontext.exact(payload)
    if body is not None:
        return body
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = yaml.safe_dump(payload, sort_keys=False)
    return text.encode()


def load_payload(raw: bytes) -> dict[str, Any]:
    """Any YAML; flow-style payloads (ours) take the fast JSON path."""
    if not raw:
        return {}
    try:
        data = _parse(raw)
    except RecursionError as exc:  # `[[[[...`: too deep for the parsers
        raise FrameError("payload is nested too deeply") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise FrameError("payload must be a mapping with string keys")
    return data


def _parse(raw: bytes) -> Any:
    try:
        return jsontext.loads(raw)
    except ValueError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError(f"payload is not UTF-8: {exc}") from exc
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise FrameError(f"payload is not YAML: {exc}") from exc


def encode(frame: Frame) -> bytes:
    body = dump_payload(frame.payload)
    if frame.is_handshake:
        return (
            HEADER.pack(frame.major, frame.minor, frame.type, frame.operand, int(frame.role))
            + frame.source.bytes
            + frame.destination.bytes
            + LENGTH.pack(len(body))
            + body
        )
    return HEADER.pack(frame.major, frame.minor, frame.type, frame.operand, len(body)) + body


def parse_header(data: bytes) -> tuple[int, int, Type, enum.IntEnum, int]:
    """(major, minor, type, operand, length-or-role); FrameError for unknown codes."""
    major, minor, type_, operand, field = HEADER.unpack(data)
    try:
        ftype = Type(type_)
        op = OPERANDS[ftype](operand)
    except ValueError as exc:
        raise FrameError(f"unknown frame type/operand {type_}/{operand}") from exc
    return major, minor, ftype, op, field


def decode(data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Frame:
    """Decode one complete frame held in `data` (used by tests and fuzzing)."""
    if len(data) < HEADER.size:
        raise FrameError("short header")
    major, minor, ftype, op, field = parse_header(data[: HEADER.size])
    rest = data[HEADER.size :]
    extra: dict[str, Any] = {}
    if is_handshake(ftype, op):
        if len(rest) < 2 * UUID_BYTES + LENGTH.size:
            raise FrameError("short handshake frame")
        if field & ~int(ALL_ROLES):
            raise FrameError(f"unknown role bits {field:#x}")
        extra = {
            "role": Role(field),
            "source": uuid.UUID(bytes=rest[:UUID_BYTES]),
            "destination": uuid.UUID(bytes=rest[UUID_BYTES : 2 * UUID_BYTES]),
        }
        (field,) = LENGTH.unpack(rest[2 * UUID_BYTES : 2 * UUID_BYTES + LENGTH.size])
        rest = rest[2 * UUID_BYTES + LENGTH.size :]
    if field > max_payload:
        raise FrameError(f"payload of {field} bytes exceeds the {max_payload}-byte limit")
    if len(rest) != field:
        raise FrameError("payload length does not match the header")
    return Frame(ftype, op, load_payload(rest), major=major, minor=minor, **extra)
