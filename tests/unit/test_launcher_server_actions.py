"""The launcher's server actions in-process, with the fake backend: power changes, rebuild,
resize (capacity decided in frame order), snapshot uploads and console output."""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ciaostack.agents import upload
from ciaostack.agents.state import StateStore
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.frames import Command, Error, Event, Status, Type
from tests.unit.test_launcher_agent import _feed, _ready, _start


def _cmd(instance: str) -> P.InstanceCommand:
    return P.InstanceCommand(instance_uuid=instance)


def _size(mem_mb: int) -> P.Requirements:
    return P.Requirements(mem_mb=mem_mb, vcpus=1, disk_mb=1000)


def _states(client: Any) -> dict[str, P.InstanceState]:
    stats = client.of(Type.COMMAND, Command.STATS)[-1]
    return {s.instance_uuid: s.state for s in stats.instances}


def test_power_changes(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        await _feed(launcher, Command.START, _start("a"))
        await _feed(launcher, Command.PAUSE, _cmd("a"))
        await _feed(launcher, Command.PAUSE, _cmd("a"))  # already paused: answered the same
        await launcher.jobs.idle()
        assert _states(client) == {"a": P.InstanceState.PAUSED}
        await _feed(launcher, Command.RESUME, _cmd("a"))
        await _feed(launcher, Command.SUSPEND, _cmd("ghost"))
        await launcher.jobs.idle()
        assert client.of(Type.ERROR, Error.RESUME_FAILURE)[0].reason == "invalid_state"
        assert client.of(Type.ERROR, Error.SUSPEND_FAILURE)[0].reason == "no_instance"
        await _feed(launcher, Command.UNPAUSE, _cmd("a"))
        await _feed(launcher, Command.SUSPEND, _cmd("a"))
        await launcher.jobs.idle()
        stats = client.of(Type.COMMAND, Command.STATS)[-1].instances[0]
        assert (stats.state, stats.power_state) == (P.InstanceState.SUSPENDED, 7)
        await _feed(launcher, Command.RESUME, _cmd("a"))
        await launcher.jobs.idle()
        assert _states(client) == {"a": P.InstanceState.RUNNING}
        assert launcher.backend._instances["a"]["state"] == "running"  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_resize_capacity_is_decided_in_frame_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)  # 4096 MB, 1024 reserved
        await _feed(launcher, Command.START, _start("a", mem_mb=1024))
        await launcher.jobs.idle()
        client.frames.clear()
        grow = P.Resize("a", _size(2048), _size(1024), attempt=7)
        await _feed(launcher, Command.RESIZE, grow)
        # Decided before the backend even ran: a second resize sees the first's room taken.
        await _feed(launcher, Command.RESIZE, P.Resize("a", _size(4000), _size(2048), attempt=8))
        await launcher.jobs.idle()
        [failure] = client.of(Type.ERROR, Error.RESIZE_FAILURE)
        assert failure.reason == "full_cn" and "needs 1952 MB" in failure.message
        # Each answer names the resize it answers.
        assert failure.attempt == 8
        [resized] = client.of(Type.EVENT, Event.INSTANCE_RESIZED)
        assert (resized.instance_uuid, resized.attempt) == ("a", 7)
        assert client.of(Type.STATUS, Status.READY)[-1].mem_available_mb == 3072 - 2048
        assert launcher.backend._instances["a"]["mem_mb"] == 2048  # type: ignore[attr-defined]
        saved = StateStore(tmp_path, fsync=False).load_instances()["a"]
        assert saved.start.requirements.mem_mb == 2048
        client.frames.clear()
        await _feed(launcher, Command.REVERT_RESIZE, P.Resize("a", _size(1024), _size(2048)))
        await _feed(launcher, Command.REVERT_RESIZE, P.Resize("a", _size(1024), _size(2048)))
        await _feed(launcher, Command.CONFIRM_RESIZE, _cmd("ghost"))
        await launcher.jobs.idle()
        assert len(client.of(Type.EVENT, Event.RESIZE_REVERTED)) == 2  # a repeat is answered
        assert launcher.instances["a"].start.requirements.mem_mb == 1024
        assert client.of(Type.ERROR, Error.CONFIRM_RESIZE_FAILURE)[0].reason == "no_instance"

    asyncio.run(scenario())


def test_a_moved_copy_answers_with_the_number_of_its_own_move(tmp_path: Path) -> None:
    """A START of a later move that finds the copy an earlier one left here is answered
    with the earlier move's number: the controller must not take it as done."""

    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        moved = dataclasses.replace(_start("a"), resize_from="node-left", attempt=3)
        await _feed(launcher, Command.START, moved)
        await launcher.jobs.idle()
        await _feed(launcher, Command.START, dataclasses.replace(moved, attempt=5))
        await launcher.jobs.idle()
        events = client.of(Type.EVENT, Event.INSTANCE_RESIZED)
        assert [(e.instance_uuid, e.attempt) for e in events] == [("a", 3), ("a", 3)]
        # A restarted launcher cannot know whether the move's answer went out before
        # it died: it says it again, numbered, once it reconnects.
        await launcher.jobs.cancel()
        again, client = await _ready(tmp_path, connected=False)
        await again.jobs.idle()
        client.connected.set()
        await again.on_connected(type("Conn", (), {"peer_uuid": "sched"})())  # type: ignore[arg-type]
        [resent] = client.of(Type.EVENT, Event.INSTANCE_RESIZED)
        assert (resent.instance_uuid, resent.attempt) == ("a", 3)

    asyncio.run(scenario())


def test_a_resize_the_backend_refuses_keeps_the_old_size(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        await _feed(launcher, Command.START, _start("a", fake_fail="resize"))
        await _feed(launcher, Command.RESIZE, P.Resize("a", _size(2048), _size(1024)))
        await launcher.jobs.idle()
        assert client.of(Type.ERROR, Error.RESIZE_FAILURE)[0].reason == "resize_failure"
        assert launcher.instances["a"].start.requirements.mem_mb == 1024
        assert client.of(Type.STATUS, Status.READY)[-1].mem_available_mb == 3072 - 1024

    asyncio.run(scenario())


def test_rebuild_keeps_a_stopped_instance_stopped(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        await _feed(launcher, Command.START, _start("a"))
        await _feed(launcher, Command.STOP, _cmd("a"))
        rebuild = P.Rebuild("a", "image-2", name="renamed", metadata={"k": "v"})
        await _feed(launcher, Command.REBUILD, rebuild)
        await launcher.jobs.idle()
        assert [e.instance_uuid for e in client.of(Type.EVENT, Event.INSTANCE_REBUILT)] == ["a"]
        record = launcher.instances["a"]
        assert record.state == P.InstanceState.STOPPED
        assert (record.start.image_uuid, record.start.name) == ("image-2", "renamed")
        fake = launcher.backend._instances["a"]  # type: ignore[attr-defined]
        assert (fake["image"], fake["boots"], fake["state"]) == ("image-2", 2, "stopped")
        await _feed(launcher, Command.START, _start("b", fake_fail="rebuild"))
        # The fake fails what the metadata the REBUILD carries asks it to.
        failing = P.Rebuild("b", "image-2", metadata={"fake_fail": "rebuild"})
        await _feed(launcher, Command.REBUILD, failing)
        await launcher.jobs.idle()
        assert client.of(Type.ERROR, Error.REBUILD_FAILURE)[0].instance_uuid == "b"
        assert _states(client)["b"] == P.InstanceState.ERROR

    asyncio.run(scenario())


def test_snapshot_uploads_the_disk_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, str, bytes, str]] = []

    def put_file(url: str, grant: str, path: Path, disk_format: str, **_: Any) -> None:
        sent.append((url, grant, path.read_bytes(), disk_format))
        if "refuse" in url:
            raise upload.UploadError("the image API answered 401")

    monkeypatch.setattr(upload, "put_file", put_file)

    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        await _feed(launcher, Command.START, _start("a"))
        await _feed(launcher, Command.SNAPSHOT, P.Snapshot("a", "img-1", "http://api/up", "g"))
        await _feed(launcher, Command.SNAPSHOT, P.Snapshot("a", "img-2", "http://refuse", "g"))
        await _feed(launcher, Command.SNAPSHOT, P.Snapshot("ghost", "img-3", "http://x", "g"))
        await _feed(launcher, Command.SNAPSHOT, P.Snapshot("a", "../x", "http://x", "g"))
        await launcher.jobs.idle()
        [done] = client.of(Type.EVENT, Event.SNAPSHOT_UPLOADED)
        assert (done.instance_uuid, done.image_uuid) == ("a", "img-1")
        reasons = {f.image_uuid: f.reason for f in client.of(Type.ERROR, Error.SNAPSHOT_FAILURE)}
        assert reasons == {
            "img-2": "upload_failure",
            "img-3": "no_instance",
            "../x": "invalid_data",
        }
        url, grant, data, disk_format = sent[0]
        assert (url, grant, disk_format) == ("http://api/up", "g", "raw")
        assert data.startswith(b"ciaostack fake disk\ninstance a\nimage i\n") and len(data) == 65536
        assert not list((tmp_path / "snapshots").iterdir())
        # A shelve's snapshot powers the guest off before copying its disk.
        assert _states(client) == {"a": P.InstanceState.RUNNING}
        shelve = P.Snapshot("a", "img-4", "http://api/up", "g", power_off=True)
        await _feed(launcher, Command.SNAPSHOT, shelve)
        await launcher.jobs.idle()
        assert _states(client) == {"a": P.InstanceState.STOPPED}
        assert launcher.backend._instances["a"]["state"] == "stopped"  # type: ignore[attr-defined]
        assert [e.image_uuid for e in client.of(Type.EVENT, Event.SNAPSHOT_UPLOADED)][-1] == "img-4"
        # A guest that cannot be stopped is not copied: the shelve fails.
        await _feed(launcher, Command.START, _start("b", fake_fail="stop"))
        await _feed(launcher, Command.SNAPSHOT, dataclasses.replace(shelve, instance_uuid="b"))
        await launcher.jobs.idle()
        [refused] = [
            f for f in client.of(Type.ERROR, Error.SNAPSHOT_FAILURE) if f.instance_uuid == "b"
        ]
        assert "could not be powered off" in refused.message
        assert len(sent) == 3  # img-1, img-2 (refused by the API) and img-4: nothing for b

    asyncio.run(scenario())


def test_console_output_does_not_wait_behind_a_long_operation(tmp_path: Path) -> None:
    async def scenario() -> None:
        launcher, client = await _ready(tmp_path)
        await _feed(launcher, Command.START, _start("a"))
        await launcher.jobs.idle()
        launcher.backend.boot_delay = 0.5  # type: ignore[attr-defined]
        await _feed(launcher, Command.REBUILD, P.Rebuild("a", "image-2"))
        await _feed(launcher, Command.CONSOLE_OUTPUT, P.ConsoleRequest("a", "r1", length=1))
        await _feed(launcher, Command.CONSOLE_OUTPUT, P.ConsoleRequest("ghost", "r2"))
        await asyncio.sleep(0.1)
        [reply] = client.of(Type.EVENT, Event.CONSOLE_OUTPUT)
        assert (reply.request_id, reply.output) == ("r1", "instance-a login: ")
        [failure] = client.of(Type.ERROR, Error.CONSOLE_OUTPUT_FAILURE)
        assert (failure.request_id, failure.reason) == ("r2", "no_instance")
        assert not client.of(Type.EVENT, Event.INSTANCE_REBUILT)
        await launcher.jobs.idle()

    asyncio.run(scenario())


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Records one PUT and answers with the status the test asked for."""

    received: list[tuple[str, dict[str, str], bytes]] = []
    status = 204

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), body))
        self.send_response(self.status)
        self.send_header("Content-Length", "12")
        self.end_headers()
        self.wfile.write(b"not allowed\n")

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver
    finally:
        server.shutdown()
        server.server_close()


def test_put_file_streams_with_the_grant_in_a_header(
    tmp_path: Path, receiver: tuple[str, type[_Receiver]]
) -> None:
    base, handler = receiver
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\1" * (3 * upload.CHUNK + 5))
    handler.status = 204
    upload.put_file(f"{base}/image/internal/snapshots/img?x=1", "secret-grant", disk, "qcow2")
    [(path, headers, body)] = handler.received
    assert path == "/image/internal/snapshots/img?x=1" and body == disk.read_bytes()
    assert headers[P.UPLOAD_GRANT_HEADER] == "secret-grant"
    assert headers[P.UPLOAD_DISK_FORMAT_HEADER] == "qcow2"
    assert headers["Content-Type"] == "application/octet-stream"
    handler.status = 401
    with pytest.raises(upload.UploadError) as refused:
        upload.put_file(f"{base}/up", "secret-grant", disk, "raw")
    assert "401" in str(refused.value) and "secret-grant" not in str(refused.value)
    with pytest.raises(upload.UploadError):
        upload.put_file("ftp://example/x", "g", disk, "raw")


def test_put_file_over_https_trusts_the_clouds_ca_only(tmp_path: Path) -> None:
    """The grant goes only to a host whose certificate the launcher's CA signed."""
    from ciaostack.core.ssntp.certs import create_ca, issue
    from ciaostack.core.ssntp.frames import Role

    ca_pem, ca_key = create_ca(tmp_path / "ca")
    other_pem, _ = create_ca(tmp_path / "other", name="another CA")
    server_pem = issue(tmp_path / "ca", ca_pem, ca_key, Role.SERVER, "api", ["127.0.0.1"])
    _Receiver.received = []
    _Receiver.status = 204
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_pem)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"snapshot")
    url = f"https://127.0.0.1:{server.server_address[1]}/up"
    try:
        with pytest.raises(upload.UploadError):
            upload.put_file(url, "secret-grant", disk, "raw", cafile=other_pem)
        assert _Receiver.received == []
        upload.put_file(url, "secret-grant", disk, "raw", cafile=ca_pem)
        [(_, headers, body)] = _Receiver.received
        assert headers[P.UPLOAD_GRANT_HEADER] == "secret-grant" and body == b"snapshot"
    finally:
        server.shutdown()
        server.server_close()


def test_the_upload_grant_stays_out_of_reprs() -> None:
    snapshot = P.Snapshot("inst", "img", "https://api/up", "secret-grant")
    assert "secret-grant" not in repr(snapshot)
    assert P.to_dict(snapshot)["upload_grant"] == "secret-grant"
