"""The scheduler's node table and its placement rule: first fit, round robin.

The search starts after the node used last and wraps, so consecutive starts
spread over the cloud without sorting anything. A node fits when it is READY
and its free memory, disk and vCPUs cover the request (ciao ignored vCPUs),
it matches the pinning, node-type and availability-zone requirements, and the
affinity constraints hold. What was placed is subtracted from the node until
its next READY report replaces the figures with the node's own.
"""

from __future__ import annotations

import dataclasses

from ciaostack.core.ssntp.payloads import (
    NodeStatus,
    NodeType,
    Ready,
    Requirements,
    StartFailureReason,
)


@dataclasses.dataclass(slots=True)
class Node:
    uuid: str
    hostname: str = ""
    node_type: NodeType = NodeType.COMPUTE
    availability_zone: str = "nova"
    status: NodeStatus = NodeStatus.READY
    mem_total_mb: int = 0
    mem_free_mb: int = 0
    disk_total_mb: int = 0
    disk_free_mb: int = 0
    vcpus_total: int = 0
    vcpus_free: int = 0
    load: float = 0.0
    instances: set[str] = dataclasses.field(default_factory=set)

    def fits(self, req: Requirements) -> bool:
        return (
            self.status is NodeStatus.READY
            and self.mem_free_mb >= req.mem_mb
            and self.disk_free_mb >= req.disk_mb
            and self.vcpus_free >= req.vcpus
        )


class PlacementError(Exception):
    def __init__(self, reason: StartFailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class NodeTable:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self._order: list[str] = []
        self._last = -1
        self.instance_node: dict[str, str] = {}
        # Instances moving to another node -> the node they leave, which still holds them.
        self._moved_from: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.nodes)

    # -- reports from launchers ---------------------------------------------------------

    def connect(self, uuid: str, hostname: str = "") -> Node:
        node = self.nodes.get(uuid)
        if node is None:
            # Unknown capacity until its READY: not a candidate before then.
            node = self.nodes[uuid] = Node(uuid=uuid, hostname=hostname, status=NodeStatus.OFFLINE)
            self._order.append(uuid)
        return node

    def ready(self, report: Ready) -> Node:
        node = self.connect(report.node_uuid, report.hostname)
        node.hostname = report.hostname or node.hostname
        node.node_type = report.node_type
        node.availability_zone = report.availability_zone
        node.status = NodeStatus.READY
        node.mem_total_mb, node.mem_free_mb = report.mem_total_mb, report.mem_available_mb
        node.disk_total_mb, node.disk_free_mb = report.disk_total_mb, report.disk_available_mb
        node.vcpus_total, node.vcpus_free = report.vcpus_total, report.vcpus_available
        node.load = report.load
        for instance in node.instances - set(report.instances):
            if self.instance_node.get(instance) == node.uuid:
                del self.instance_node[instance]
        node.instances = set(report.instances)
        for instance in node.instances:
            self.instance_node[instance] = node.uuid
        return node

    def set_status(self, uuid: str, status: NodeStatus) -> None:
        node = self.nodes.get(uuid)
        if node is not None:
            node.status = status

    def remove(self, uuid: str) -> Node | None:
        node = self.nodes.pop(uuid, None)
        if node is None:
            return None
        index = self._order.index(uuid)
        del self._order[index]
        if index <= self._last:
            self._last -= 1
        for instance in node.instances:
            if self.instance_node.get(instance) == uuid:
                del self.instance_node[instance]
                self._back_to_source(instance)
        return node

    def forget_instance(self, instance: str, node_uuid: str = "") -> None:
        """The instance is gone (from `node_uuid` only, when given: an instance that
        moved is deleted from the node it left, and stays where it is now)."""
        if node_uuid and self.instance_node.get(instance) != node_uuid:
            if node_uuid in self.nodes:
                self.nodes[node_uuid].instances.discard(instance)
            if self._moved_from.get(instance) == node_uuid:
                del self._moved_from[instance]  # the copy a confirmed move left is gone
            return
        uuid = self.instance_node.pop(instance, None)
        if uuid is not None and uuid in self.nodes:
            self.nodes[uuid].instances.discard(instance)
        self._back_to_source(instance)

    def _back_to_source(self, instance: str) -> None:
        """A move's new copy is gone (reverted, failed, or its node left): the instance
        is where it was, if that node still holds it."""
        source = self._moved_from.pop(instance, None)
        if source is not None and source in self.nodes and instance in self.nodes[source].instances:
            self.instance_node[instance] = source

    # -- placement ----------------------------------------------------------------------------

    def _eligible(self, node: Node, req: Requirements) -> bool:
        if node.uuid in req.excluded_nodes:
            return False
        if req.network_node != (node.node_type is NodeType.NETWORK):
            return False
        if req.availability_zone and node.availability_zone != req.availability_zone:
            return False
        if req.same_node_as and any(
            self.instance_node.get(i) != node.uuid for i in req.same_node_as
        ):
            return False
        return not any(self.instance_node.get(i) == node.uuid for i in req.different_node_from)

    def place(self, instance: str, req: Requirements) -> Node:
        """Choose a node and reserve the request on it; PlacementError when none can."""
        existing = self.instance_node.get(instance)
        if existing is not None and existing in self.nodes:
            return self.nodes[existing]
        return self._claim(instance, req)

    def move(self, instance: str, req: Requirements, source: str) -> Node:
        """Choose another node for an instance that leaves `source` (a resize its node has
        no room for, or a migration; `req.excluded_nodes` names it) and reserve the request
        there. The source keeps what it holds until its next READY no longer lists it."""
        node = self._claim(instance, req)
        self._moved_from[instance] = source
        return node

    def _claim(self, instance: str, req: Requirements) -> Node:
        node = self._pinned(req) if req.node_id else self._first_fit(req)
        node.mem_free_mb -= req.mem_mb
        node.disk_free_mb -= req.disk_mb
        node.vcpus_free -= req.vcpus
        node.instances.add(instance)
        self.instance_node[instance] = node.uuid
        return node

    def grow(self, node_uuid: str, current: Requirements, wanted: Requirements) -> Node:
        """Reserve on an instance's node what a resize from `current` to `wanted` adds
        (nothing for what shrinks); PlacementError when the node cannot take it."""
        node = self.nodes.get(node_uuid)
        if node is None:
            raise PlacementError(StartFailureReason.NO_CN, f"node {node_uuid} is not connected")
        if node.status in (NodeStatus.MAINTENANCE, NodeStatus.OFFLINE):
            raise PlacementError(
                StartFailureReason.NODE_MAINTENANCE, f"node {node_uuid} is {node.status.value}"
            )
        mem = max(0, wanted.mem_mb - current.mem_mb)
        disk = max(0, wanted.disk_mb - current.disk_mb)
        vcpus = max(0, wanted.vcpus - current.vcpus)
        if mem > node.mem_free_mb or disk > node.disk_free_mb or vcpus > node.vcpus_free:
            raise PlacementError(
                StartFailureReason.FULL_CN,
                f"node {node_uuid} has no room to add {mem} MB, {disk} MB disk, {vcpus} vCPUs "
                f"(free: {node.mem_free_mb} MB, {node.disk_free_mb} MB disk, "
                f"{node.vcpus_free} vCPUs)",
            )
        node.mem_free_mb -= mem
        node.disk_free_mb -= disk
        node.vcpus_free -= vcpus
        return node

    def _pinned(self, req: Requirements) -> Node:
        node = self.nodes.get(req.node_id)
        if node is None:
            raise PlacementError(StartFailureReason.NO_CN, f"node {req.node_id} is not connected")
        if node.status is NodeStatus.MAINTENANCE:
            raise PlacementError(
                StartFailureReason.NODE_MAINTENANCE, f"node {req.node_id} is in maintenance"
            )
        if not (node.fits(req) and self._eligible(node, req)):
            raise PlacementError(StartFailureReason.FULL_CN, f"node {req.node_id} cannot take it")
        return node

    def _first_fit(self, req: Requirements) -> Node:
        order = self._order
        count = len(order)
        candidates = 0
        for step in range(1, count + 1):
            index = (self._last + step) % count
            node = self.nodes[order[index]]
            if req.network_node != (node.node_type is NodeType.NETWORK):
                continue
            candidates += 1
            if node.fits(req) and self._eligible(node, req):
                self._last = index
                return node
        if candidates == 0:
            reason = StartFailureReason.NO_NET_CN if req.network_node else StartFailureReason.NO_CN
            raise PlacementError(reason, "no node of the requested kind is connected")
        raise PlacementError(StartFailureReason.FULL_CLOUD, "no node has room for the request")
