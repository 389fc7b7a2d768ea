"""The scheduler: the SSNTP server between controllers and launchers.

Forwarding rules:
- START from a controller is placed and sent to the chosen node; when nothing
  fits, the controller gets StartFailure with the reason.
- Other instance commands go to the node that holds the instance (or the node
  the payload names); unknown instance: the matching failure to the sender.
  A RESIZE stays on that node if the node has room for what the instance grows
  by (reserved until the node's next READY); else the instance's START that it
  carries goes to another node that can take it (the instance moves), else the
  controller gets ResizeFailure.
- EVACUATE and RESTORE go to the node they name; CONFIGURE to every peer.
- Launchers' STATS, events and errors go to every connected controller.
- Node arrivals and departures are announced to controllers as
  NodeConnected/NodeDisconnected, and a controller that connects late is told
  about every node already there.
The scheduler keeps nothing it cannot rebuild from READY reports after a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any

from ciaostack.core.scheduler.placement import NodeTable, PlacementError
from ciaostack.core.ssntp import payloads as P
from ciaostack.core.ssntp.frames import Command, Error, Event, Frame, Role, Status, Type
from ciaostack.core.ssntp.transport import Connection, Server

LOG = logging.getLogger("ciaostack.scheduler")

AGENT_ROLES = Role.AGENT | Role.NETAGENT

_NO_NODE_MESSAGE = "no connected node holds this instance"
# Commands for the node holding an instance, and the error that says it cannot be reached.
_INSTANCE_FAILURES = {
    Command.STOP: Error.STOP_FAILURE,
    Command.DELETE: Error.DELETE_FAILURE,
    Command.RESTART: Error.RESTART_FAILURE,
    Command.PAUSE: Error.PAUSE_FAILURE,
    Command.UNPAUSE: Error.UNPAUSE_FAILURE,
    Command.SUSPEND: Error.SUSPEND_FAILURE,
    Command.RESUME: Error.RESUME_FAILURE,
    Command.REBUILD: Error.REBUILD_FAILURE,
    Command.RESIZE: Error.RESIZE_FAILURE,
    Command.CONFIRM_RESIZE: Error.CONFIRM_RESIZE_FAILURE,
    Command.REVERT_RESIZE: Error.REVERT_RESIZE_FAILURE,
    Command.SNAPSHOT: Error.SNAPSHOT_FAILURE,
    Command.CONSOLE_OUTPUT: Error.CONSOLE_OUTPUT_FAILURE,
}
_VOLUME_FAILURES = {
    Command.ATTACH_VOLUME: Error.ATTACH_VOLUME_FAILURE,
    Command.DETACH_VOLUME: Error.DETACH_VOLUME_FAILURE,
}
_NODE_STATUS = {
    Status.FULL: P.NodeStatus.FULL,
    Status.OFFLINE: P.NodeStatus.OFFLINE,
    Status.MAINTENANCE: P.NodeStatus.MAINTENANCE,
}


class Scheduler:
    def __init__(self, node_uuid: uuid.UUID | None = None) -> None:
        self.uuid = node_uuid or uuid.uuid4()
        self.table = NodeTable()
        self.server: Server | None = None
        # The server's peers by role, kept on connect and disconnect: every agent frame
        # goes to the controllers, and scanning all (1,000s of) peers for them each
        # time cost more than forwarding.
        self._controllers: dict[uuid.UUID, Connection] = {}
        self._agents: dict[uuid.UUID, Connection] = {}

    def attach(self, server: Server) -> None:
        self.server = server

    # -- peers ----------------------------------------------------------------------------

    def _track(self, conn: Connection) -> None:
        """Record a new session (a peer that reconnects replaces its old one)."""
        for peers in (self._controllers, self._agents):
            peers.pop(conn.peer_uuid, None)
        if conn.peer_role & Role.CONTROLLER:
            self._controllers[conn.peer_uuid] = conn
        if conn.peer_role & AGENT_ROLES:
            self._agents[conn.peer_uuid] = conn

    def _untrack(self, conn: Connection) -> None:
        for peers in (self._controllers, self._agents):
            if peers.get(conn.peer_uuid) is conn:
                del peers[conn.peer_uuid]

    async def _to_controllers(self, frame: Frame) -> None:
        for conn in list(self._controllers.values()):
            try:
                await conn.send(frame)
            except (ConnectionError, OSError):
                LOG.warning(
                    "controller %s unreachable; frame %s dropped", conn.peer_uuid, frame.name
                )

    async def _to_node(self, node_uuid: str, frame: Frame) -> bool:
        assert self.server is not None
        try:
            conn = self.server.peers.get(uuid.UUID(node_uuid))
        except ValueError:
            return False
        if conn is None or not conn.peer_role & AGENT_ROLES:
            return False
        try:
            await conn.send(frame)
        except (ConnectionError, OSError):
            return False
        return True

    async def on_connect(self, conn: Connection) -> None:
        self._track(conn)
        if conn.peer_role & AGENT_ROLES:
            node = self.table.connect(str(conn.peer_uuid), conn.hostname)
            if conn.peer_role & Role.NETAGENT:
                node.node_type = P.NodeType.NETWORK
            await self._to_controllers(self._node_event(Event.NODE_CONNECTED, node.uuid))
        if conn.peer_role & Role.CONTROLLER:
            for node in list(self.table.nodes.values()):
                await conn.send(self._node_event(Event.NODE_CONNECTED, node.uuid))

    async def on_disconnect(self, conn: Connection) -> None:
        self._untrack(conn)
        if conn.peer_role & AGENT_ROLES:
            self.table.remove(str(conn.peer_uuid))
            await self._to_controllers(
                self._node_event(Event.NODE_DISCONNECTED, str(conn.peer_uuid))
            )

    def _node_event(self, event: Event, node_uuid: str) -> Frame:
        node = self.table.nodes.get(node_uuid)
        return P.frame(
            Type.EVENT,
            event,
            P.NodeEvent(
                node_uuid=node_uuid,
                node_type=node.node_type if node else P.NodeType.COMPUTE,
                hostname=node.hostname if node else "",
            ),
        )

    # -- frames -----------------------------------------------------------------------------

    async def handle(self, conn: Connection, frame: Frame, message: Any) -> None:
        if conn.peer_role & Role.CONTROLLER:
            await self._from_controller(conn, frame, message)
        elif conn.peer_role & AGENT_ROLES:
            await self._from_agent(conn, frame, message)
        else:
            await conn.send_error(
                Error.INVALID_FRAME_TYPE,
                P.InvalidFrame(
                    frame_type=int(frame.type),
                    operand=int(frame.operand),
                    message="the scheduler takes frames from controllers and agents only",
                ),
            )

    async def _from_controller(self, conn: Connection, frame: Frame, message: Any) -> None:
        op = frame.operand
        if frame.type != Type.COMMAND:
            await self._refuse(conn, frame, "controllers send commands")
        elif op == Command.START:
            await self._start(conn, message)
        elif op in _INSTANCE_FAILURES:
            node = message.workload_agent_uuid or self.table.instance_node.get(
                message.instance_uuid
            )
            if op == Command.RESIZE and not await self._room_for(conn, message, node):
                return  # answered, or moved to another node
            if not node or not await self._to_node(node, frame):
                await conn.send_error(
                    _INSTANCE_FAILURES[op], _failure(message, P.NO_NODE, _NO_NODE_MESSAGE)
                )
        elif op in _VOLUME_FAILURES:
            node = message.workload_agent_uuid or self.table.instance_node.get(
                message.instance_uuid
            )
            if not node or not await self._to_node(node, frame):
                await conn.send_error(
                    _VOLUME_FAILURES[op],
                    P.VolumeFailure(
                        instance_uuid=message.instance_uuid,
                        volume_uuid=message.volume_uuid,
                        reason=P.NO_NODE,
                        message=_NO_NODE_MESSAGE,
                    ),
                )
        elif op in (Command.EVACUATE, Command.RESTORE):
            if not await self._to_node(message.workload_agent_uuid, frame):
                await self._refuse(conn, frame, f"node {message.workload_agent_uuid} unknown")
        elif op == Command.CONFIGURE:
            for peer in list(self._agents.values()):
                await peer.send(frame)
        else:
            await self._refuse(conn, frame, f"{frame.name} is not for the scheduler")

    async def _start(self, conn: Connection, start: P.Start) -> None:
        try:
            node = self.table.place(start.instance_uuid, start.requirements)
        except PlacementError as exc:
            LOG.info("instance=%s not placed: %s", start.instance_uuid, exc.reason)
            await conn.send_error(
                Error.START_FAILURE,
                P.StartFailure(
                    instance_uuid=start.instance_uuid,
                    reason=exc.reason,
                    message=exc.message,
                    attempt=start.attempt,
                ),
            )
            return
        forwarded = P.frame(
            Type.COMMAND, Command.START, dataclasses.replace(start, node_uuid=node.uuid)
        )
        if not await self._to_node(node.uuid, forwarded):
            self.table.forget_instance(start.instance_uuid)
            await conn.send_error(
                Error.START_FAILURE,
                P.StartFailure(
                    instance_uuid=start.instance_uuid,
                    reason=P.StartFailureReason.NO_CN,
                    message="the chosen node went away",
                    node_uuid=node.uuid,
                    attempt=start.attempt,
                ),
            )
            return
        LOG.debug("instance=%s placed on node=%s", start.instance_uuid, node.uuid)

    async def _room_for(self, conn: Connection, resize: P.Resize, node: str | None) -> bool:
        """A resize stays on the instance's node when the node has room for what it grows
        by (reserved there); else, when the controller sent the instance's START with it,
        the instance moves to a node that can take it whole (a migration, `move`, always
        does); else ResizeFailure (Nova's "no valid host"). False when answered here."""
        if not node or node not in self.table.nodes:
            return True  # answered no_node by the caller: a node that is gone moves nothing
        moving_to = self.table.instance_node.get(resize.instance_uuid)
        refusal: PlacementError | None = None
        if resize.start is not None and moving_to not in (None, node):
            # A RESIZE sent again (the controller's outbox sends at least once) while its
            # move is under way: the START goes again to where the first one went.
            refusal = await self._move(resize.start, node, moving_to)
        elif not resize.move:
            try:
                self.table.grow(node, resize.current, resize.requirements)
                return True
            except PlacementError as exc:
                LOG.info("instance=%s not resized on node=%s: %s", resize.instance_uuid, node, exc)
                refusal = exc
                if resize.start is not None:
                    refusal = await self._move(resize.start, node)
        elif resize.start is not None:
            refusal = await self._move(resize.start, node)
        else:
            refusal = PlacementError(P.StartFailureReason.INVALID_DATA, "a move needs a START")
        if refusal is not None:
            await conn.send_error(
                Error.RESIZE_FAILURE, _failure(resize, refusal.reason.value, refusal.message)
            )
        return False

    async def _move(
        self, start: P.Start, source: str, again_to: str | None = None
    ) -> PlacementError | None:
        """Start a resized instance on another node (`again_to` when it was sent there
        already); why not, when no node can take it."""
        requirements = dataclasses.replace(
            start.requirements,
            excluded_nodes=[*start.requirements.excluded_nodes, source],
        )
        try:
            if again_to is not None:
                target = self.table.nodes[again_to]
            else:
                target = self.table.move(start.instance_uuid, requirements, source)
        except PlacementError as exc:
            LOG.info("instance=%s has no node to move to: %s", start.instance_uuid, exc)
            return exc
        forwarded = P.frame(
            Type.COMMAND,
            Command.START,
            dataclasses.replace(
                start, requirements=requirements, node_uuid=target.uuid, resize_from=source
            ),
        )
        if not await self._to_node(target.uuid, forwarded):
            self.table.forget_instance(start.instance_uuid, target.uuid)
            return PlacementError(P.StartFailureReason.NO_CN, "the chosen node went away")
        LOG.info(
            "instance=%s moves from node=%s to node=%s", start.instance_uuid, source, target.uuid
        )
        return None

    async def _from_agent(self, conn: Connection, frame: Frame, message: Any) -> None:
        node_uuid = str(conn.peer_uuid)
        if frame.type == Type.STATUS:
            if frame.operand == Status.READY:
                if message.node_uuid != node_uuid:
                    await self._refuse(conn, frame, "READY must describe the sender's own node")
                    return
                self.table.ready(message)
            elif frame.operand in _NODE_STATUS:
                self.table.set_status(node_uuid, _NODE_STATUS[frame.operand])
                await self._to_controllers(frame)
            return
        if frame.type == Type.EVENT and frame.operand == Event.INSTANCE_DELETED:
            self.table.forget_instance(message.instance_uuid, node_uuid)
        if frame.type == Type.ERROR and frame.operand == Error.START_FAILURE:
            self.table.forget_instance(message.instance_uuid, node_uuid)
        if frame.type == Type.COMMAND and frame.operand != Command.STATS:
            await self._refuse(conn, frame, "agents send STATS, statuses, events and errors")
            return
        await self._to_controllers(frame)

    async def _refuse(self, conn: Connection, frame: Frame, why: str) -> None:
        LOG.warning("refused %s from %s: %s", frame.name, conn.peer_uuid, why)
        await conn.send_error(
            Error.INVALID_FRAME_TYPE,
            P.InvalidFrame(frame_type=int(frame.type), operand=int(frame.operand), message=why),
        )


def _failure(command: Any, reason: str, message: str) -> Any:
    """The failure payload answering `command` (each kind names what it was about)."""
    if isinstance(command, P.Snapshot):
        return P.SnapshotFailure(command.instance_uuid, command.image_uuid, reason, message)
    if isinstance(command, P.ConsoleRequest):
        return P.ConsoleFailure(command.instance_uuid, command.request_id, reason, message)
    # A RESIZE's refusal names the resize it refuses, as the node's own would.
    attempt = command.attempt if isinstance(command, P.Resize) else 0
    return P.InstanceFailure(
        instance_uuid=command.instance_uuid, reason=reason, message=message, attempt=attempt
    )
