"""SSNTP frame and payload encoding, including fuzzing of the decoder."""

from __future__ import annotations

import contextlib
import struct
import uuid

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ciaostack.core.ssntp import frames as F
from ciaostack.core.ssntp import payloads as P


def test_header_layout_is_the_readme_one() -> None:
    frame = P.frame(F.Type.STATUS, F.Status.FULL, P.NodeOnly(node_uuid="n1"))
    data = F.encode(frame)
    major, minor, type_, operand, length = struct.unpack("!BBBBI", data[:8])
    assert (major, minor, type_, operand) == (0, 1, 1, 2)
    assert length == len(data) - 8


def test_connect_carries_role_and_uuids() -> None:
    me = uuid.uuid4()
    frame = F.Frame(
        F.Type.COMMAND,
        F.Command.CONNECT,
        {"hostname": "cn1"},
        role=F.Role.AGENT | F.Role.NETAGENT,
        source=me,
    )
    data = F.encode(frame)
    assert struct.unpack("!I", data[4:8])[0] == 0x14
    assert data[8:24] == me.bytes and data[24:40] == bytes(16)
    back = F.decode(data)
    assert back.role == F.Role.AGENT | F.Role.NETAGENT and back.source == me
    assert back.payload == {"hostname": "cn1"}


def test_start_round_trip_is_typed() -> None:
    start = P.Start(
        instance_uuid="i1",
        tenant_uuid="t1",
        image_uuid="img",
        requirements=P.Requirements(mem_mb=512, vcpus=2, disk_mb=1024),
        networking=P.Networking(mac="02:00:00:00:00:01", ip="10.0.0.5"),
        storage=[P.StorageResource(id="v1", boot=True)],
    )
    back = P.parse(F.decode(F.encode(P.frame(F.Type.COMMAND, F.Command.START, start))))
    assert back == start


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"instance_uuid": "i", "tenant_uuid": "t", "image_uuid": "m"}, "requirements is required"),
        (
            {
                "instance_uuid": 5,
                "tenant_uuid": "t",
                "image_uuid": "m",
                "requirements": {"mem_mb": 1, "vcpus": 1},
            },
            "instance_uuid must be a string",
        ),
        (
            {
                "instance_uuid": "i",
                "tenant_uuid": "t",
                "image_uuid": "m",
                "requirements": {"mem_mb": "lots", "vcpus": 1},
            },
            "requirements.mem_mb must be an integer",
        ),
    ],
)
def test_bad_payloads_are_refused_with_the_field(payload: dict, message: str) -> None:
    frame = F.Frame(F.Type.COMMAND, F.Command.START, payload)
    with pytest.raises(P.PayloadError, match=message):
        P.parse(F.decode(F.encode(frame)))


def test_unknown_enum_value_is_refused() -> None:
    frame = F.Frame(F.Type.ERROR, F.Error.START_FAILURE, {"instance_uuid": "i", "reason": "bored"})
    with pytest.raises(P.PayloadError, match="StartFailureReason"):
        P.parse(frame)


def test_every_operand_has_a_message() -> None:
    for ftype, enum_ in F.OPERANDS.items():
        for operand in enum_:
            assert (ftype, operand) in P.MESSAGES


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02\x00\x00\x00\x00\x00",  # type 2 is reserved
        b"\x00\x01\x00\x63\x00\x00\x00\x00",  # unknown command
        b"\x00\x01\x00\x01\x00\x00\x00\x05abc",  # short payload
        b"\x00\x01\x00\x01\x00\x00\x00\x03[1]",  # not a mapping
        b"\x00\x01\x00\x01\xff\xff\xff\xff",  # over the size limit
        b"\x00\x01\x00\x00\x00\x00\x01\x00" + bytes(36),  # unknown role bits
    ],
)
def test_malformed_frames_raise_frame_error(data: bytes) -> None:
    with pytest.raises(F.FrameError):
        F.decode(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_never_crashes_on_garbage(data: bytes) -> None:
    try:
        frame = F.decode(data)
    except F.FrameError:
        return
    with contextlib.suppress(P.PayloadError):
        P.parse(frame)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(P.MESSAGES, key=lambda k: (k[0], k[1]))),
    st.dictionaries(
        st.sampled_from(
            [
                "instance_uuid",
                "node_uuid",
                "reason",
                "requirements",
                "mem_mb",
                "state",
                "instances",
                "status",
                "vcpus_total",
                "storage",
            ]
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=5), children, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=6,
    ),
)
def test_payload_parser_only_raises_payload_error(key: tuple, payload: dict) -> None:
    frame = F.Frame(key[0], key[1], payload)
    with contextlib.suppress(P.PayloadError):
        P.parse(F.decode(F.encode(frame)))


def test_payloads_are_yaml_any_parser_reads_and_block_yaml_is_accepted() -> None:
    start = P.Start(
        instance_uuid="i1",
        tenant_uuid="t1",
        image_uuid="img",
        requirements=P.Requirements(mem_mb=512, vcpus=2),
        metadata={"k": "ü"},
    )
    data = F.encode(P.frame(F.Type.COMMAND, F.Command.START, start))
    assert yaml.safe_load(data[8:].decode()) == P.to_dict(start)
    block = yaml.safe_dump(P.to_dict(start), default_flow_style=False).encode()
    frame = F.decode(data[:4] + len(block).to_bytes(4, "big") + block)
    assert P.parse(frame) == start


@pytest.mark.parametrize(
    "payload",
    [
        {"load": float("inf"), "held": None},  # orjson would write null for the infinity
        {"nested": [{"x": float("-inf")}], "none": None},
        {"big": 2**70},  # beyond orjson's 64 bits
    ],
)
def test_what_json_cannot_spell_goes_as_block_yaml_and_comes_back(payload: dict) -> None:
    frame = F.decode(F.encode(F.Frame(F.Type.COMMAND, F.Command.START, payload)))
    assert frame.payload == payload


def test_payloads_with_nulls_and_finite_numbers_stay_one_line_of_json() -> None:
    payload = {"held": None, "load": 0.25, "name": "ü", "n": -(2**63)}
    data = F.encode(F.Frame(F.Type.COMMAND, F.Command.START, payload))
    assert b"\n" not in data[8:] and F.decode(data).payload == payload


def test_what_orjson_cannot_write_goes_as_the_standard_library_writes_it() -> None:
    payload = {1: "x", "nested": {2: "y"}, "small": -(2**63) - 1}
    frame = F.decode(F.encode(F.Frame(F.Type.COMMAND, F.Command.START, payload)))
    assert frame.payload == {"1": "x", "nested": {"2": "y"}, "small": -(2**63) - 1}


@pytest.mark.parametrize("body", [b"[" * 100_000, b"[" * 1100 + b"]" * 1100])
def test_a_payload_nested_too_deeply_is_a_frame_error(body: bytes) -> None:
    with pytest.raises(F.FrameError):
        F.decode(F.HEADER.pack(0, 1, F.Type.COMMAND, F.Command.START, len(body)) + body)


def test_a_payload_that_is_not_utf8_is_a_frame_error() -> None:
    body = b"\xff\xfe: 1"
    with pytest.raises(F.FrameError, match="UTF-8"):
        F.decode(F.HEADER.pack(0, 1, F.Type.COMMAND, F.Command.START, len(body)) + body)


def test_to_dict_makes_plain_data_that_parses_back() -> None:
    stat = P.InstanceStat("i-1", P.InstanceState.RUNNING, 128, volumes=["v-1"])
    stats = P.Stats(
        node_uuid="n-1",
        status=P.NodeStatus.FULL,
        mem_total_mb=1024,
        mem_available_mb=0,
        disk_total_mb=10,
        disk_available_mb=0,
        vcpus_total=2,
        vcpus_available=0,
        load=0.5,
        instances=[stat, stat],
    )
    plain = P.to_dict(stats)
    # Enums become their values (plain str, as YAML's safe dumper needs), nested too.
    assert type(plain["status"]) is str and plain["status"] == "FULL"
    assert [type(i["state"]) for i in plain["instances"]] == [str, str]
    assert plain["instances"][0] == {
        "instance_uuid": "i-1",
        "state": "running",
        "memory_usage_mb": 128,
        "disk_usage_mb": 0,
        "cpu_usage": 0,
        "power_state": 0,
        "volumes": ["v-1"],
    }
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain
    assert P.from_dict(P.Stats, plain) == stats


@pytest.mark.parametrize("state", [True, 1, ["running"], {"running": 1}, "RUNNING", None])
def test_an_enum_field_refuses_what_is_not_one_of_its_values(state: object) -> None:
    payload = {"instance_uuid": "i-1", "state": state}
    with pytest.raises(P.PayloadError, match="state"):
        P.from_dict(P.InstanceStat, payload)


def _stats(load: float, mem: int = 1024) -> P.Stats:
    stat = P.InstanceStat("i-1", P.InstanceState.RUNNING, 128, volumes=["v-1"])
    return P.Stats(
        node_uuid="n-1",
        status=P.NodeStatus.READY,
        mem_total_mb=mem,
        mem_available_mb=0,
        disk_total_mb=10,
        disk_available_mb=0,
        vcpus_total=2,
        vcpus_available=0,
        load=load,
        instances=[stat],
    )


@pytest.mark.parametrize(
    "payload",
    [
        _stats(0.5),
        _stats(float("inf")),  # orjson would write null
        _stats(0.5, mem=2**70),  # orjson refuses it
        P.Start(
            instance_uuid="i1",
            tenant_uuid="t1",
            image_uuid="img",
            requirements=P.Requirements(mem_mb=512, vcpus=2),
            metadata={"k": "ü"},
        ),
    ],
)
def test_to_dict_gives_the_same_plain_data_whichever_way_it_takes(payload: object) -> None:
    plain = P.to_dict(payload)
    assert plain == P._plain(payload)
    assert type(plain["node_uuid" if "node_uuid" in plain else "instance_uuid"]) is str
    if isinstance(payload, P.Stats):
        assert type(plain["status"]) is str and plain["load"] == payload.load
