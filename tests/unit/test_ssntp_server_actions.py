"""The server actions' SSNTP messages (ciaostack additions): fixed numbers, typed payloads
that survive the wire, and the scheduler's room check for a resize (or its move)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ciaostack.core.scheduler.placement import NodeTable, PlacementError
from ciaostack.core.ssntp import frames as F
from ciaostack.core.ssntp import payloads as P

REQ = P.Requirements(mem_mb=4096, vcpus=2, disk_mb=40 * 1024)
OLD = P.Requirements(mem_mb=128, vcpus=1, disk_mb=1024)


def test_numbers_follow_heartbeat_and_never_move() -> None:
    """Peers rely on these numbers (docs/ssntp.md): appending is fine, renumbering is not."""
    commands = {c.name: c.value for c in F.Command if c.value > F.Command.HEARTBEAT}
    assert commands == {
        "PAUSE": 14,
        "UNPAUSE": 15,
        "SUSPEND": 16,
        "RESUME": 17,
        "REBUILD": 18,
        "RESIZE": 19,
        "CONFIRM_RESIZE": 20,
        "REVERT_RESIZE": 21,
        "SNAPSHOT": 22,
        "CONSOLE_OUTPUT": 23,
    }
    assert [e.value for e in F.Event][-5:] == [10, 11, 12, 13, 14]
    assert F.Event.CONSOLE_OUTPUT == 14 and F.Event.SNAPSHOT_UPLOADED == 13
    assert F.Error.PAUSE_FAILURE == 12 and F.Error.CONSOLE_OUTPUT_FAILURE == 21


@pytest.mark.parametrize(
    ("type_", "operand", "payload"),
    [
        (F.Type.COMMAND, F.Command.PAUSE, P.InstanceCommand("i1", workload_agent_uuid="n1")),
        (F.Type.COMMAND, F.Command.RESUME, P.InstanceCommand("i1")),
        (F.Type.COMMAND, F.Command.CONFIRM_RESIZE, P.InstanceCommand("i1", "n1")),
        (
            F.Type.COMMAND,
            F.Command.REBUILD,
            P.Rebuild("i1", "img2", "n1", name="after", metadata={"k": "v"}, user_data="aGVsbG8="),
        ),
        (F.Type.COMMAND, F.Command.RESIZE, P.Resize("i1", REQ, OLD, "n1")),
        (F.Type.COMMAND, F.Command.REVERT_RESIZE, P.Resize("i1", OLD, REQ)),
        (
            F.Type.COMMAND,
            F.Command.RESIZE,
            P.Resize("i1", REQ, REQ, "n1", P.Start("i1", "t1", "img", REQ), move=True),
        ),
        (
            F.Type.COMMAND,
            F.Command.START,
            P.Start("i1", "t1", "img", REQ, node_uuid="n2", resize_from="n1"),
        ),
        (
            F.Type.COMMAND,
            F.Command.SNAPSHOT,
            P.Snapshot("i1", "img3", "https://api.example/image/up/img3", "payload.sig", "n1"),
        ),
        (F.Type.COMMAND, F.Command.CONSOLE_OUTPUT, P.ConsoleRequest("i1", "r1", 50, "n1")),
        (F.Type.EVENT, F.Event.INSTANCE_REBUILT, P.InstanceEvent("i1", "n1")),
        (F.Type.EVENT, F.Event.INSTANCE_RESIZED, P.InstanceEvent("i1", "n1")),
        (F.Type.EVENT, F.Event.RESIZE_REVERTED, P.InstanceEvent("i1")),
        (F.Type.EVENT, F.Event.SNAPSHOT_UPLOADED, P.SnapshotEvent("i1", "img3", "n1")),
        (
            F.Type.EVENT,
            F.Event.CONSOLE_OUTPUT,
            P.ConsoleOutput("i1", "r1", "boot: ok\n\tünïcode \x1b[0m", "n1"),
        ),
        (F.Type.ERROR, F.Error.PAUSE_FAILURE, P.InstanceFailure("i1", "invalid_state", "stopped")),
        (F.Type.ERROR, F.Error.RESIZE_FAILURE, P.InstanceFailure("i1", "full_cn", "no room")),
        (F.Type.ERROR, F.Error.SNAPSHOT_FAILURE, P.SnapshotFailure("i1", "img3", "upload_failure")),
        (F.Type.ERROR, F.Error.CONSOLE_OUTPUT_FAILURE, P.ConsoleFailure("i1", "r1", "no_node")),
    ],
)
def test_payloads_round_trip(type_: F.Type, operand: Any, payload: Any) -> None:
    frame = P.frame(type_, operand, payload)
    assert P.parse(F.decode(F.encode(frame))) == payload


def test_console_length_defaults_to_everything() -> None:
    frame = F.Frame(
        F.Type.COMMAND, F.Command.CONSOLE_OUTPUT, {"instance_uuid": "i", "request_id": "r"}
    )
    assert P.parse(frame).length == -1


RESIZE_WITHOUT_CURRENT = {"instance_uuid": "i", "requirements": {"mem_mb": 1, "vcpus": 1}}
SNAPSHOT_WITHOUT_GRANT = {"instance_uuid": "i", "image_uuid": "m", "upload_url": "u"}
CONSOLE_LENGTH_AS_TEXT = {"instance_uuid": "i", "request_id": "r", "length": "9"}


@pytest.mark.parametrize(
    ("operand", "payload", "message"),
    [
        (F.Command.RESIZE, RESIZE_WITHOUT_CURRENT, "current is required"),
        (F.Command.SNAPSHOT, SNAPSHOT_WITHOUT_GRANT, "upload_grant is required"),
        (F.Command.REBUILD, {"instance_uuid": "i", "image_uuid": 7}, "image_uuid must be a string"),
        (F.Command.CONSOLE_OUTPUT, CONSOLE_LENGTH_AS_TEXT, "length must be an integer"),
    ],
)
def test_bad_payloads_are_refused(operand: F.Command, payload: dict, message: str) -> None:
    with pytest.raises(P.PayloadError, match=message):
        P.parse(F.decode(F.encode(F.Frame(F.Type.COMMAND, operand, payload))))


def _table(mem: int = 4096, vcpus: int = 4, nodes: tuple[str, ...] = ("n1",)) -> NodeTable:
    table = NodeTable()
    for node in nodes:
        table.ready(
            P.Ready(
                node_uuid=node,
                mem_total_mb=mem,
                mem_available_mb=mem,
                disk_total_mb=100_000,
                disk_available_mb=100_000,
                vcpus_total=vcpus,
                vcpus_available=vcpus,
            )
        )
    return table


def test_a_resize_reserves_what_it_adds_on_its_own_node() -> None:
    table = _table()
    node = table.grow("n1", OLD, REQ)
    assert (node.mem_free_mb, node.vcpus_free) == (4096 - (4096 - 128), 4 - 1)
    # Shrinking needs no room at all, even on a node with none left.
    assert table.grow("n1", REQ, OLD).mem_free_mb == 128


def test_a_resize_the_node_has_no_room_for_is_refused() -> None:
    table = _table(mem=2048)
    with pytest.raises(PlacementError) as refused:
        table.grow("n1", OLD, REQ)
    assert refused.value.reason is P.StartFailureReason.FULL_CN
    assert table.nodes["n1"].mem_free_mb == 2048  # nothing reserved
    with pytest.raises(PlacementError) as gone:
        table.grow("n2", OLD, REQ)
    assert gone.value.reason is P.StartFailureReason.NO_CN
    table.set_status("n1", P.NodeStatus.MAINTENANCE)
    with pytest.raises(PlacementError) as maintenance:
        table.grow("n1", REQ, OLD)
    assert maintenance.value.reason is P.StartFailureReason.NODE_MAINTENANCE


def test_a_move_goes_elsewhere_and_the_node_left_keeps_its_copy() -> None:
    table = _table(mem=16384, nodes=("n1", "n2", "n3"))
    table.place("i1", OLD)
    assert table.instance_node["i1"] == "n1"
    # Not to the node it leaves, even with room there; the new node is charged in full.
    away = dataclasses.replace(REQ, excluded_nodes=["n1"])
    moved = table.move("i1", away, "n1")
    assert moved.uuid == "n2" and moved.mem_free_mb == 16384 - REQ.mem_mb
    assert table.instance_node["i1"] == "n2"
    assert "i1" in table.nodes["n1"].instances  # until its READY says otherwise
    # The new copy gone (a revert, a failed start): the instance is where it was.
    table.forget_instance("i1", "n2")
    assert table.instance_node["i1"] == "n1" and "i1" not in table.nodes["n2"].instances
    # Its target leaving the cloud does the same.
    assert table.move("i1", away, "n1").uuid == "n3"
    table.remove("n3")
    assert table.instance_node["i1"] == "n1"
    # Moved for good: the copy deleted where it was leaves it where it is now ...
    assert table.move("i1", away, "n1").uuid == "n2"
    table.forget_instance("i1", "n1")
    assert table.instance_node["i1"] == "n2" and "i1" not in table.nodes["n1"].instances
    # ... and deleted there, it is gone.
    table.forget_instance("i1", "n2")
    assert "i1" not in table.instance_node and "i1" not in table.nodes["n2"].instances
    with pytest.raises(PlacementError) as nowhere:
        table.move("i2", dataclasses.replace(REQ, excluded_nodes=["n1", "n2"]), "n1")
    assert nowhere.value.reason is P.StartFailureReason.FULL_CLOUD


def test_the_schedulers_refusal_of_a_resize_names_the_resize() -> None:
    from ciaostack.core.scheduler.service import _failure

    refusal = _failure(P.Resize("i1", REQ, OLD, "n1", attempt=9), "no_node", "gone")
    assert (refusal.instance_uuid, refusal.reason, refusal.attempt) == ("i1", "no_node", 9)
    assert _failure(P.InstanceCommand("i1"), "no_node", "gone").attempt == 0
