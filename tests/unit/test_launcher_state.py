"""The launcher's state directory: identity, atomic per-instance files, recovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ciaostack.agents.state import InstanceRecord, PendingCommand, StateError, StateStore, Task
from ciaostack.core.ssntp import payloads as P


def _start(instance: str = "inst-1", **extra: object) -> P.Start:
    return P.Start(
        instance_uuid=instance,
        tenant_uuid="tenant",
        image_uuid="image",
        requirements=P.Requirements(mem_mb=512, vcpus=1, disk_mb=1024),
        networking=P.Networking(mac="02:00:00:00:00:01", ip="10.0.0.5"),
        storage=[P.StorageResource(id="vol-1", boot=True, size_gb=1)],
        user_data="#cloud-config\npassword: s3cret\n",
        metadata={"role": "web"},
        **extra,  # type: ignore[arg-type]
    )


def test_node_uuid_is_created_once_and_survives(tmp_path: Path) -> None:
    first = StateStore(tmp_path / "state").load_node()
    again = StateStore(tmp_path / "state").load_node()
    assert first.node_uuid == again.node_uuid
    assert not again.maintenance
    store = StateStore(tmp_path / "state")
    again.maintenance = True
    store.save_node(again)
    assert StateStore(tmp_path / "state").load_node().maintenance


def test_unreadable_node_file_is_an_error_not_a_new_identity(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "node.json").write_text("{not json")
    with pytest.raises(StateError):
        store.load_node()


def test_instance_round_trip_is_private_and_atomic(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    record = InstanceRecord(start=_start(attempt=2), volumes=["vol-9"])
    store.save(record)
    record.state, record.task = P.InstanceState.RUNNING, Task.NONE
    store.save(record)
    path = tmp_path / "instances" / "inst-1.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert tmp_path.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["inst-1.json"]  # no temp left
    loaded = StateStore(tmp_path).load_instances()
    assert loaded == {"inst-1": record}
    assert loaded["inst-1"].start.networking == P.Networking(mac="02:00:00:00:00:01", ip="10.0.0.5")
    store.remove("inst-1")
    store.remove("inst-1")  # removing twice is fine
    assert StateStore(tmp_path).load_instances() == {}


def test_broken_and_leftover_files_are_skipped(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(InstanceRecord(start=_start("good")))
    d = tmp_path / "instances"
    (d / "bad.json").write_text("{")
    (d / "old.json").write_text(json.dumps({"version": 99}))
    (d / "wrongname.json").write_text((d / "good.json").read_text())
    (d / ".good.json.tmp").write_text("half a wri")
    assert list(store.load_instances()) == ["good"]
    assert not (d / ".good.json.tmp").exists()
    assert (d / "bad.json").exists()  # left for an operator to look at


def test_pending_commands_round_trip_and_bad_ones_are_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    resize = P.Resize("inst-1", P.Requirements(1024, 2, 2048), P.Requirements(512, 1, 1024))
    pending = [
        PendingCommand("p1", "STOP", P.to_dict(P.InstanceCommand(instance_uuid="inst-1"))),
        PendingCommand("p2", "RESIZE", P.to_dict(resize), held=P.to_dict(resize.current)),
    ]
    record = InstanceRecord(start=_start(), pending=pending)
    store.save(record)
    assert StateStore(tmp_path).load_instances()["inst-1"].pending == pending
    path = tmp_path / "instances" / "inst-1.json"
    for bad in ([{"id": "p", "command": "SELF_DESTRUCT", "payload": {}}], [{"id": "p"}], {}):
        data = json.loads(path.read_text())
        data["pending"] = bad
        with pytest.raises(StateError):
            InstanceRecord.from_json(data)


def test_unsafe_instance_ids_never_become_paths(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for bad in ("../escape", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(ValueError):
            store.save(InstanceRecord(start=_start(bad)))
    assert not (tmp_path.parent / "escape.json").exists()
