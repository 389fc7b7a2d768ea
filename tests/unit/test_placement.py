"""First-fit, round-robin placement over the scheduler's node table."""

from __future__ import annotations

import pytest

from ciaostack.core.scheduler.placement import NodeTable, PlacementError
from ciaostack.core.ssntp.payloads import (
    NodeStatus,
    NodeType,
    Ready,
    Requirements,
    StartFailureReason,
)


def ready(uuid: str, mem: int = 4096, disk: int = 10000, vcpus: int = 4, **kw) -> Ready:  # noqa: ANN003
    return Ready(
        node_uuid=uuid,
        mem_total_mb=mem,
        mem_available_mb=mem,
        disk_total_mb=disk,
        disk_available_mb=disk,
        vcpus_total=vcpus,
        vcpus_available=vcpus,
        **kw,
    )


def table(*reports: Ready) -> NodeTable:
    t = NodeTable()
    for r in reports:
        t.ready(r)
    return t


SMALL = Requirements(mem_mb=512, vcpus=1, disk_mb=100)


def test_round_robin_starts_after_the_last_used_node() -> None:
    t = table(ready("a"), ready("b"), ready("c"))
    assert [t.place(f"i{n}", SMALL).uuid for n in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_vcpus_count_as_much_as_memory() -> None:
    t = table(ready("a", vcpus=1), ready("b", vcpus=8))
    t.place("i1", SMALL)  # takes a's only vCPU
    assert t.place("i2", SMALL).uuid == "b"
    assert t.place("i3", SMALL).uuid == "b"  # a still has memory but no vCPU


def test_placed_load_is_subtracted_until_the_next_ready() -> None:
    t = table(ready("a", mem=1024))
    t.place("i1", Requirements(mem_mb=1024, vcpus=1))
    with pytest.raises(PlacementError) as err:
        t.place("i2", Requirements(mem_mb=1024, vcpus=1))
    assert err.value.reason is StartFailureReason.FULL_CLOUD
    t.ready(ready("a", mem=2048, instances=["i1"]))
    assert t.place("i2", Requirements(mem_mb=1024, vcpus=1)).uuid == "a"


def test_no_node_and_wrong_kind_reasons() -> None:
    with pytest.raises(PlacementError) as err:
        NodeTable().place("i", SMALL)
    assert err.value.reason is StartFailureReason.NO_CN
    t = table(ready("a"))
    with pytest.raises(PlacementError) as err:
        t.place("i", Requirements(mem_mb=1, vcpus=1, network_node=True))
    assert err.value.reason is StartFailureReason.NO_NET_CN
    t.ready(ready("n", node_type=NodeType.NETWORK))
    assert t.place("cnci", Requirements(mem_mb=1, vcpus=1, network_node=True)).uuid == "n"
    assert t.place("vm", SMALL).uuid == "a"  # compute work never lands on the network node


def test_pinning_and_maintenance() -> None:
    t = table(ready("a"), ready("b"))
    assert t.place("i1", Requirements(mem_mb=1, vcpus=1, node_id="b")).uuid == "b"
    t.set_status("b", NodeStatus.MAINTENANCE)
    with pytest.raises(PlacementError) as err:
        t.place("i2", Requirements(mem_mb=1, vcpus=1, node_id="b"))
    assert err.value.reason is StartFailureReason.NODE_MAINTENANCE
    assert t.place("i3", SMALL).uuid == "a"  # maintenance nodes are skipped
    with pytest.raises(PlacementError) as err:
        t.place("i4", Requirements(mem_mb=1, vcpus=1, node_id="zz"))
    assert err.value.reason is StartFailureReason.NO_CN
    with pytest.raises(PlacementError) as err:
        t.place("i5", Requirements(mem_mb=10**6, vcpus=1, node_id="a"))
    assert err.value.reason is StartFailureReason.FULL_CN


def test_availability_zone_and_affinity() -> None:
    t = table(
        ready("a", availability_zone="az1"),
        ready("b", availability_zone="az2"),
        ready("c", availability_zone="az2"),
    )
    assert t.place("i1", Requirements(mem_mb=1, vcpus=1, availability_zone="az2")).uuid == "b"
    near = Requirements(mem_mb=1, vcpus=1, same_node_as=["i1"])
    assert t.place("i2", near).uuid == "b"
    far = Requirements(mem_mb=1, vcpus=1, different_node_from=["i1", "i2"], availability_zone="az2")
    assert t.place("i3", far).uuid == "c"
    with pytest.raises(PlacementError):
        t.place(
            "i4",
            Requirements(
                mem_mb=1, vcpus=1, different_node_from=["i1", "i3"], availability_zone="az2"
            ),
        )


def test_repeated_start_returns_the_same_node_without_charging_twice() -> None:
    t = table(ready("a", mem=1024), ready("b", mem=1024))
    first = t.place("i1", Requirements(mem_mb=1024, vcpus=1))
    again = t.place("i1", Requirements(mem_mb=1024, vcpus=1))
    assert first is again
    assert t.place("i2", Requirements(mem_mb=1024, vcpus=1)).uuid != first.uuid


def test_removed_node_releases_its_instances() -> None:
    t = table(ready("a"), ready("b"))
    t.place("i1", SMALL)
    t.remove("a")
    assert "i1" not in t.instance_node
    assert t.place("i2", SMALL).uuid == "b"
    assert len(t) == 1


def test_unready_node_is_not_a_candidate_until_ready() -> None:
    t = NodeTable()
    t.connect("a")
    with pytest.raises(PlacementError):
        t.place("i1", SMALL)
    t.ready(ready("a"))
    assert t.place("i1", SMALL).uuid == "a"
