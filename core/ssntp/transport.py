"""SSNTP over asyncio and mutual TLS 1.3: a server, a reconnecting client, and the
connection both share.

Frames from one connection are handed to the handler one at a time, in the
order they arrived; a slow handler slows only its own peer (TCP backpressure),
never the others. A peer that sends nothing for three heartbeat intervals is
taken for dead. A frame that does not decode, or whose payload does not fit
its message, is answered with an ERROR frame and the connection is closed.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import logging
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ciaostack.core.ssntp import payloads
from ciaostack.core.ssntp.certs import roles_of
from ciaostack.core.ssntp.frames import (
    HEADER,
    LENGTH,
    MAJOR,
    UUID_BYTES,
    Command,
    Error,
    Frame,
    FrameError,
    Role,
    Status,
    Type,
    decode,
    encode,
    is_handshake,
    parse_header,
)

LOG = logging.getLogger("ciaostack.ssntp")

Handler = Callable[["Connection", Frame, Any], Awaitable[None]]
PeerHook = Callable[["Connection"], Awaitable[None]]

HANDSHAKE_TIMEOUT = 10.0

# asyncio gives every TLS connection a 256 KiB read buffer; a scheduler holding
# thousands of launchers needs far less (a TLS record is at most 16 KiB).
asyncio.sslproto.SSLProtocol.max_size = 32 * 1024


class HandshakeRefused(Exception):
    """The other side refused us for good (ConnectionAborted): do not retry."""


def server_context(cert: Path, ca: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(cert: Path, ca: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert)
    ctx.load_verify_locations(ca)
    return ctx


async def read_frame(reader: asyncio.StreamReader, max_payload: int) -> Frame:
    header = await reader.readexactly(HEADER.size)
    _major, _minor, ftype, op, field = parse_header(header)
    data = header
    if is_handshake(ftype, op):
        data += await reader.readexactly(2 * UUID_BYTES + LENGTH.size)
        (field,) = LENGTH.unpack(data[-LENGTH.size :])
    if field > max_payload:
        raise FrameError(f"payload of {field} bytes exceeds the {max_payload}-byte limit")
    return decode(data + await reader.readexactly(field), max_payload)


class Connection:
    """One established SSNTP session, seen from either end."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        local_uuid: uuid.UUID,
        cert_roles: Role,
        max_payload: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.local_uuid = local_uuid
        self.cert_roles = cert_roles
        self.max_payload = max_payload
        self.peer_uuid = uuid.UUID(int=0)
        self.peer_role = Role(0)
        self.hostname = ""
        self._lock = asyncio.Lock()
        self.closed = False

    @property
    def address(self) -> str:
        peer = self.writer.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if peer else "?"

    async def send(self, frame: Frame) -> None:
        """Write one frame; waits while the peer's buffer is full (backpressure)."""
        data = encode(frame)
        async with self._lock:
            if self.closed:
                raise ConnectionError("connection closed")
            self.writer.write(data)
            await self.writer.drain()
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug("ssntp sent frame=%s peer=%s bytes=%d", frame.name, self.peer_uuid, len(data))

    async def send_error(self, error: Error, payload: Any) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self.send(payloads.frame(Type.ERROR, error, payload))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError, asyncio.TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def serve(self, handler: Handler, heartbeat: float) -> None:
        """Read frames until the peer goes away; hand each to `handler` in order."""
        beats = asyncio.create_task(self._heartbeats(heartbeat))
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(
                        read_frame(self.reader, self.max_payload), 3 * heartbeat
                    )
                except TimeoutError:
                    LOG.warning(
                        "ssntp peer=%s silent for %.0fs: dropping", self.peer_uuid, 3 * heartbeat
                    )
                    return
                except FrameError as exc:
                    LOG.warning("ssntp peer=%s bad frame: %s", self.peer_uuid, exc)
                    await self.send_error(
                        Error.INVALID_FRAME_TYPE, payloads.InvalidFrame(message=str(exc))
                    )
                    return
                except (asyncio.IncompleteReadError, ConnectionError, OSError, ssl.SSLError):
                    return
                if LOG.isEnabledFor(logging.DEBUG):
                    LOG.debug("ssntp received frame=%s peer=%s", frame.name, self.peer_uuid)
                if frame.type == Type.COMMAND and frame.operand == Command.HEARTBEAT:
                    continue
                try:
                    message = payloads.parse(frame)
                except payloads.PayloadError as exc:
                    LOG.warning("ssntp peer=%s bad %s payload: %s", self.peer_uuid, frame.name, exc)
                    await self.send_error(
                        Error.INVALID_FRAME_TYPE,
                        payloads.InvalidFrame(
                            frame_type=int(frame.type),
                            operand=int(frame.operand),
                            message=str(exc),
                        ),
                    )
                    return
                await handler(self, frame, message)
        finally:
            beats.cancel()
            await self.close()

    async def _heartbeats(self, interval: float) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while True:
                await asyncio.sleep(interval)
                await self.send(payloads.frame(Type.COMMAND, Command.HEARTBEAT))


def _cert_roles(writer: asyncio.StreamWriter) -> Role:
    sslobj = writer.get_extra_info("ssl_object")
    der = sslobj.getpeercert(binary_form=True) if sslobj else None
    return roles_of(der) if der else Role(0)


class Server:
    """The SSNTP server (the scheduler's side)."""

    def __init__(
        self,
        node_uuid: uuid.UUID,
        role: Role,
        context: ssl.SSLContext,
        handler: Handler,
        on_connect: PeerHook | None = None,
        on_disconnect: PeerHook | None = None,
        heartbeat: float = 5.0,
        max_payload: int = 1 << 20,
        cluster: dict[str, Any] | None = None,
    ) -> None:
        self.uuid = node_uuid
        self.role = role
        self.context = context
        self.handler = handler
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.heartbeat = heartbeat
        self.max_payload = max_payload
        self.cluster = cluster or {}
        self.peers: dict[uuid.UUID, Connection] = {}
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(
            self._accept,
            host,
            port,
            ssl=self.context,
            backlog=4096,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
        )
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.peers.values()):
            await conn.close()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _handshake(self, conn: Connection) -> bool:
        try:
            frame = await asyncio.wait_for(
                read_frame(conn.reader, conn.max_payload), HANDSHAKE_TIMEOUT
            )
        except (
            FrameError,
            TimeoutError,
            asyncio.IncompleteReadError,
            OSError,
            ssl.SSLError,
        ) as exc:
            LOG.warning("ssntp refused %s: no valid CONNECT (%s)", conn.address, exc)
            return False
        if not (frame.type == Type.COMMAND and frame.operand == Command.CONNECT):
            LOG.warning("ssntp refused %s: first frame was %s", conn.address, frame.name)
            await conn.send_error(
                Error.CONNECTION_ABORTED,
                payloads.ConnectionError_(message="the first frame must be CONNECT"),
            )
            return False
        if frame.major != MAJOR:
            LOG.warning("ssntp refused %s: protocol %d.%d", conn.address, frame.major, frame.minor)
            await conn.send_error(
                Error.CONNECTION_ABORTED,
                payloads.ConnectionError_(
                    message=f"protocol major version {frame.major} is not {MAJOR}"
                ),
            )
            return False
        if not frame.role or frame.role & ~conn.cert_roles:
            LOG.warning(
                "ssntp refused %s: claimed role %s, certificate grants %s",
                conn.address,
                frame.role,
                conn.cert_roles,
            )
            await conn.send_error(
                Error.CONNECTION_ABORTED,
                payloads.ConnectionError_(message="claimed role is not granted by the certificate"),
            )
            return False
        try:
            hello = payloads.parse(frame)
        except payloads.PayloadError:
            hello = payloads.Connect()
        conn.peer_uuid, conn.peer_role, conn.hostname = frame.source, frame.role, hello.hostname
        if conn.peer_uuid in self.peers:
            # A node that reconnects before we noticed it left: the new session wins.
            await self.peers[conn.peer_uuid].close()
        connected = payloads.Connected(
            heartbeat_interval=self.heartbeat, max_payload=self.max_payload, cluster=self.cluster
        )
        await conn.send(
            Frame(
                Type.STATUS,
                Status.CONNECTED,
                payloads.to_dict(connected),
                role=self.role,
                source=self.uuid,
                destination=conn.peer_uuid,
            )
        )
        return True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer, self.uuid, _cert_roles(writer), self.max_payload)
        try:
            if not await self._handshake(conn):
                return
            self.peers[conn.peer_uuid] = conn
            LOG.info(
                "ssntp connected peer=%s role=%s host=%s",
                conn.peer_uuid,
                conn.peer_role,
                conn.hostname,
            )
            if self.on_connect is not None:
                await self.on_connect(conn)
            await conn.serve(self.handler, self.heartbeat)
        except Exception:
            LOG.exception("ssntp connection from %s failed", conn.address)
        finally:
            await conn.close()
            if self.peers.get(conn.peer_uuid) is conn:
                del self.peers[conn.peer_uuid]
                LOG.info("ssntp disconnected peer=%s", conn.peer_uuid)
                if self.on_disconnect is not None:
                    await self.on_disconnect(conn)


class Client:
    """An SSNTP client that keeps itself connected (jittered exponential backoff)."""

    def __init__(
        self,
        node_uuid: uuid.UUID,
        role: Role,
        context: ssl.SSLContext,
        host: str,
        port: int,
        handler: Handler,
        on_connected: PeerHook | None = None,
        hostname: str = "",
        server_name: str | None = None,
        max_backoff: float = 10.0,
    ) -> None:
        self.uuid = node_uuid
        self.role = role
        self.context = context
        self.host = host
        self.port = port
        self.handler = handler
        self.on_connected = on_connected
        self.hostname = hostname
        self.server_name = server_name or host
        self.max_backoff = max_backoff
        self.connection: Connection | None = None
        self.connected = asyncio.Event()
        self._stopping = False

    async def send(self, frame: Frame) -> None:
        conn = self.connection
        if conn is None or conn.closed:
            raise ConnectionError("not connected to the SSNTP server")
        await conn.send(frame)

    async def connect_once(self) -> tuple[Connection, float]:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host, self.port, ssl=self.context, server_hostname=self.server_name
            ),
            HANDSHAKE_TIMEOUT,
        )
        conn = Connection(reader, writer, self.uuid, _cert_roles(writer), 1 << 20)
        hello = payloads.to_dict(payloads.Connect(hostname=self.hostname))
        await conn.send(
            Frame(Type.COMMAND, Command.CONNECT, hello, role=self.role, source=self.uuid)
        )
        reply = await asyncio.wait_for(read_frame(reader, conn.max_payload), HANDSHAKE_TIMEOUT)
        if reply.type == Type.ERROR and reply.operand == Error.CONNECTION_ABORTED:
            await conn.close()
            raise HandshakeRefused(reply.payload.get("message", "connection aborted"))
        if not (reply.type == Type.STATUS and reply.operand == Status.CONNECTED):
            await conn.close()
            raise ConnectionError(f"expected CONNECTED, got {reply.name}")
        if not reply.role or reply.role & ~conn.cert_roles:
            await conn.send_error(
                Error.CONNECTION_FAILURE,
                payloads.ConnectionError_(message="server role is not granted by its certificate"),
            )
            await conn.close()
            raise HandshakeRefused("server role does not match its certificate")
        connected = payloads.parse(reply)
        conn.peer_uuid, conn.peer_role = reply.source, reply.role
        conn.max_payload = connected.max_payload
        return conn, connected.heartbeat_interval

    async def run(self) -> None:
        """Stay connected until `stop()`; HandshakeRefused ends it for good."""
        failures = 0
        while not self._stopping:
            try:
                conn, heartbeat = await self.connect_once()
            except HandshakeRefused:
                raise
            except (
                OSError,
                ssl.SSLError,
                TimeoutError,
                asyncio.IncompleteReadError,
                FrameError,
            ) as exc:
                failures += 1
                delay = min(self.max_backoff, 0.2 * 2 ** min(failures, 10))
                delay = random.uniform(delay / 2, delay)
                LOG.info(
                    "ssntp connect to %s:%s failed (%s); retry in %.1fs",
                    self.host,
                    self.port,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.connection = conn
            self.connected.set()
            LOG.info("ssntp connected to server=%s", conn.peer_uuid)
            try:
                if self.on_connected is not None:
                    await self.on_connected(conn)
                await conn.serve(self.handler, heartbeat)
            except (ConnectionError, OSError):
                pass
            finally:
                self.connected.clear()
                self.connection = None
                await conn.close()
            if not self._stopping:
                LOG.info("ssntp lost server; reconnecting")
                await asyncio.sleep(random.uniform(0.05, 0.5))

    async def stop(self) -> None:
        self._stopping = True
        if self.connection is not None:
            await self.connection.close()
