"""SSNTP over real mutual TLS on loopback: handshake, roles, order, faults."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from pathlib import Path

import pytest

from ciaostack.core.ssntp import certs
from ciaostack.core.ssntp import frames as F
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.transport import (
    Client,
    HandshakeRefused,
    Server,
    client_context,
    read_frame,
    server_context,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca, key = certs.create_ca(d)
    other = tmp_path_factory.mktemp("other")
    other_ca, other_key = certs.create_ca(other)
    return {
        "ca": ca,
        "scheduler": certs.issue(d, ca, key, F.Role.SCHEDULER | F.Role.SERVER, "scheduler"),
        "agent": certs.issue(d, ca, key, F.Role.AGENT, "agent"),
        "controller": certs.issue(d, ca, key, F.Role.CONTROLLER, "controller"),
        "foreign": certs.issue(other, other_ca, other_key, F.Role.AGENT, "foreign"),
    }


def test_certificate_roles_are_read_back(pki: dict[str, Path]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(pki["scheduler"].read_bytes())
    assert certs.roles_of(cert.public_bytes(Encoding.DER)) == F.Role.SCHEDULER | F.Role.SERVER
    assert pki["agent"].stat().st_mode & 0o077 == 0


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[uuid.UUID, str, object]] = []
        self.event = asyncio.Event()

    async def __call__(self, conn, frame: F.Frame, message: object) -> None:  # noqa: ANN001
        self.messages.append((conn.peer_uuid, frame.name, message))
        self.event.set()


async def _server(pki: dict[str, Path], recorder: Recorder, heartbeat: float = 5.0):
    server = Server(
        uuid.uuid4(),
        F.Role.SCHEDULER | F.Role.SERVER,
        server_context(pki["scheduler"], pki["ca"]),
        recorder,
        heartbeat=heartbeat,
    )
    port = await server.start("127.0.0.1", 0)
    return server, port


def _client(pki, cert: str, role: F.Role, port: int, handler=None) -> Client:  # noqa: ANN001
    async def ignore(conn, frame, message) -> None:  # noqa: ANN001
        return None

    return Client(
        uuid.uuid4(),
        role,
        client_context(pki[cert], pki["ca"]),
        "127.0.0.1",
        port,
        handler or ignore,
        hostname=cert,
    )


def _ready(node: uuid.UUID) -> F.Frame:
    return P.frame(
        F.Type.STATUS,
        F.Status.READY,
        P.Ready(
            node_uuid=str(node),
            mem_total_mb=1024,
            mem_available_mb=1024,
            disk_total_mb=10,
            disk_available_mb=10,
            vcpus_total=4,
            vcpus_available=4,
        ),
    )


async def _wait_for(predicate, timeout: float = 5.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_handshake_and_frames_arrive_in_order(pki: dict[str, Path]) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        server, port = await _server(pki, recorder)
        agent = _client(pki, "agent", F.Role.AGENT, port)
        task = asyncio.create_task(agent.run())
        await asyncio.wait_for(agent.connected.wait(), 5)
        assert agent.connection is not None
        assert agent.connection.peer_uuid == server.uuid
        assert agent.connection.peer_role == F.Role.SCHEDULER | F.Role.SERVER
        for i in range(300):
            await agent.send(
                P.frame(
                    F.Type.EVENT, F.Event.INSTANCE_DELETED, P.InstanceEvent(instance_uuid=str(i))
                )
            )
        await _wait_for(lambda: len(recorder.messages) == 300)
        assert [m[2].instance_uuid for m in recorder.messages] == [str(i) for i in range(300)]
        assert server.peers[agent.uuid].hostname == "agent"
        await agent.stop()
        await task
        await server.close()

    asyncio.run(scenario())


def test_claiming_a_role_the_certificate_lacks_is_refused(pki: dict[str, Path]) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        server, port = await _server(pki, recorder)
        honest = _client(pki, "agent", F.Role.AGENT, port)
        honest_task = asyncio.create_task(honest.run())
        await asyncio.wait_for(honest.connected.wait(), 5)
        liar = _client(pki, "agent", F.Role.CONTROLLER, port)
        with pytest.raises(HandshakeRefused):
            await liar.run()
        assert liar.uuid not in server.peers
        # The honest peer is undisturbed.
        await honest.send(_ready(honest.uuid))
        await _wait_for(lambda: len(recorder.messages) == 1)
        await honest.stop()
        await honest_task
        await server.close()

    asyncio.run(scenario())


def test_foreign_ca_and_plain_tcp_are_refused(pki: dict[str, Path]) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        server, port = await _server(pki, recorder)
        honest = _client(pki, "agent", F.Role.AGENT, port)
        honest_task = asyncio.create_task(honest.run())
        await asyncio.wait_for(honest.connected.wait(), 5)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_cert_chain(pki["foreign"])
        ctx.load_verify_locations(pki["ca"])
        foreign = Client(uuid.uuid4(), F.Role.AGENT, ctx, "127.0.0.1", port, Recorder())
        with pytest.raises((ssl.SSLError, ConnectionError, OSError, asyncio.IncompleteReadError)):
            await foreign.connect_once()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(F.encode(F.Frame(F.Type.COMMAND, F.Command.CONNECT, role=F.Role.AGENT)))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 15) == b""  # closed on us
        writer.close()

        assert set(server.peers) == {honest.uuid}
        await honest.send(_ready(honest.uuid))
        await _wait_for(lambda: len(recorder.messages) == 1)
        await honest.stop()
        await honest_task
        await server.close()

    asyncio.run(scenario())


def test_garbage_after_handshake_gets_an_error_and_a_close(pki: dict[str, Path]) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        server, port = await _server(pki, recorder)
        agent = _client(pki, "agent", F.Role.AGENT, port)
        conn, _ = await agent.connect_once()
        conn.writer.write(b"\x00\x01\x00\x01\x00\x00\x00\x04{{{{")
        await conn.writer.drain()
        reply = await asyncio.wait_for(read_frame(conn.reader, 1 << 20), 5)
        assert (reply.type, reply.operand) == (F.Type.ERROR, F.Error.INVALID_FRAME_TYPE)
        assert await asyncio.wait_for(conn.reader.read(), 5) == b""
        await conn.close()
        # A bad payload (valid YAML, wrong shape) is refused the same way.
        conn, _ = await agent.connect_once()
        await conn.send(F.Frame(F.Type.STATUS, F.Status.READY, {"node_uuid": 1}))
        reply = await asyncio.wait_for(read_frame(conn.reader, 1 << 20), 5)
        assert reply.operand == F.Error.INVALID_FRAME_TYPE
        assert "node_uuid" in reply.payload["message"]
        await conn.close()
        assert recorder.messages == []
        await server.close()

    asyncio.run(scenario())


def test_silent_peer_is_dropped_and_client_reconnects(pki: dict[str, Path]) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        server, port = await _server(pki, recorder, heartbeat=0.2)
        # A peer that completes the handshake and then says nothing, not even heartbeats.
        mute = _client(pki, "agent", F.Role.AGENT, port)
        conn, _ = await mute.connect_once()
        assert mute.uuid in server.peers
        await _wait_for(lambda: mute.uuid not in server.peers, timeout=3)
        await conn.close()
        # A live client survives the same interval thanks to heartbeats, and reconnects
        # on its own when the server restarts.
        live = _client(pki, "agent", F.Role.AGENT, port)
        task = asyncio.create_task(live.run())
        await asyncio.wait_for(live.connected.wait(), 5)
        await asyncio.sleep(1.0)
        assert live.uuid in server.peers
        await server.close()
        await _wait_for(lambda: not live.connected.is_set())
        server2 = Server(server.uuid, server.role, server.context, recorder, heartbeat=0.2)
        await server2.start("127.0.0.1", port)
        await asyncio.wait_for(live.connected.wait(), 10)
        assert live.uuid in server2.peers
        await live.stop()
        await task
        await server2.close()

    asyncio.run(scenario())


def test_oversized_frame_is_refused(pki: dict[str, Path]) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        server, port = await _server(pki, recorder)
        server.max_payload = 1024
        agent = _client(pki, "agent", F.Role.AGENT, port)
        conn, _ = await agent.connect_once()
        big = P.frame(
            F.Type.EVENT, F.Event.TRACE_REPORT, P.TraceReport(frames=[{"x": "y" * 100}] * 20)
        )
        await conn.send(big)
        reply = await asyncio.wait_for(read_frame(conn.reader, 1 << 20), 5)
        assert reply.operand == F.Error.INVALID_FRAME_TYPE
        assert "limit" in reply.payload["message"]
        await conn.close()
        await server.close()

    asyncio.run(scenario())
