"""Servers: the compute API's requests turned into instances, ports and their records.

The life cycle itself (quota, state rules, outbox commands) is the controller's
operations module; this module adds what the compute API asks for around it:
flavor, image, key pair, server group and host checks, one port per server on
its project's network, the attributes the API shows (flavor snapshot, key
name, lock, description...), metadata, tags and the instance actions. Every
function works inside the caller's unit of work, so a server, its address,
its quota and its START command are committed together or not at all.
"""

from __future__ import annotations

import dataclasses
import os
import re
import string
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from ciaostack.core import errors, quota
from ciaostack.core.compute import flavors, keypairs, nodes, quotas, server_groups
from ciaostack.core.compute import instance_actions as actions
from ciaostack.core.controller import operations, states
from ciaostack.core.db import prepared, rows
from ciaostack.core.db.models import (
    ComputeNode,
    Image,
    Instance,
    KeyPair,
    ServerAttributes,
    ServerGroup,
    ServerMetadata,
    ServerTag,
    utcnow,
)
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.images import query as image_query
from ciaostack.core.images.model import Caller as ImageCaller
from ciaostack.core.network.ipam import IPAM, Interface, NetworkRef
from ciaostack.core.ssntp import payloads as P

DEFAULT_SECURITY_GROUP = "default"
MAX_TAGS = 50
# States in which metadata and tags may change (Nova's rule).
EDITABLE_STATES = frozenset({states.ACTIVE, states.PAUSED, states.SUSPENDED, states.STOPPED})
_HOSTNAME_BAD = re.compile(r"[^a-z0-9.-]+")
_PASSWORD_CHARS = string.ascii_letters + string.digits
_RESERVATION_CHARS = string.ascii_lowercase + string.digits


@dataclasses.dataclass(frozen=True)
class NetworkRequest:
    """One interface: on a given network (None: the project's own), optionally at an address."""

    network_id: str | None = None
    fixed_ip: str | None = None


@dataclasses.dataclass(frozen=True)
class BootRequest:
    name: str
    flavor_id: str
    image_id: str
    # None: one interface on the project's network ("auto"); (): no network ("none").
    networks: tuple[NetworkRequest, ...] | None = None
    key_name: str | None = None
    user_data: str | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    security_groups: tuple[str, ...] = (DEFAULT_SECURITY_GROUP,)
    availability_zone: str | None = None
    config_drive: bool = False
    min_count: int = 1
    max_count: int = 1
    description: str | None = None
    tags: tuple[str, ...] = ()
    access_ip_v4: str = ""
    access_ip_v6: str = ""
    disk_config: str = "MANUAL"
    same_host: tuple[str, ...] = ()
    different_host: tuple[str, ...] = ()
    group_id: str | None = None
    # An administrator's choice of compute node, by host name.
    host: str | None = None
    hints: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BootChecks:
    """What `Servers.check` read and validated for a create, before its write transaction."""

    limits: dict[str, int]
    flavor: flavors.FlavorSize
    extra_specs: dict[str, str]
    key: KeyPair | None
    node_id: str
    # The networks asked for, with their fixed addresses; None for the project's own
    # network when it is yet to be made (by the write transaction).
    networks: list[tuple[NetworkRef | None, str | None]]


@dataclasses.dataclass(frozen=True)
class Booted:
    instances: list[Instance]
    reservation_id: str


def random_string(alphabet: str, length: int) -> str:
    """`length` characters drawn uniformly from `alphabet` with the OS's randomness.

    Like `secrets.choice` per character, but with one read of the random source
    (secrets.choice makes one per character: 20 system calls per create); bytes past
    the last whole multiple of the alphabet's size are dropped so no character is
    likelier than another."""
    size = len(alphabet)
    limit = 256 - 256 % size
    chosen: list[str] = []
    while len(chosen) < length:
        chosen += [alphabet[b % size] for b in os.urandom(2 * length) if b < limit]
    return "".join(chosen[:length])


def new_reservation_id() -> str:
    return "r-" + random_string(_RESERVATION_CHARS, 8)


def new_password(length: int = 12) -> str:
    return random_string(_PASSWORD_CHARS, length)


def hostname_for(name: str, fallback: str) -> str:
    """A valid host name from a display name (lower case, letters, digits, '-' and '.')."""
    host = _HOSTNAME_BAD.sub("-", name.lower()).strip("-.")[:63].strip("-.")
    return host or fallback


def flavor_snapshot(flavor: flavors.FlavorSize, extra_specs: Mapping[str, str]) -> dict[str, Any]:
    """What a server keeps of its flavor (Nova embeds the same at 2.47)."""
    return {
        "name": flavor.name,
        "ram": flavor.ram,
        "vcpus": flavor.vcpus,
        "disk": flavor.disk,
        "ephemeral": flavor.ephemeral,
        "swap": flavor.swap,
        "extra_specs": dict(extra_specs),
    }


class Servers:
    """Server operations."""

    def __init__(self, ipam: IPAM) -> None:
        self.ipam = ipam

    # -- looking servers up ---------------------------------------------------------------

    @staticmethod
    def get(
        session: Session,
        caller: AuthContext,
        server_id: str,
        lock: bool = False,
        deleted: bool = False,
    ) -> Instance:
        """The caller's server (any server for an admin); 404 otherwise, never 403."""
        stmt = select(Instance).where(Instance.id == server_id)
        if not deleted:
            stmt = stmt.where(Instance.deleted.is_(False))
        if not caller.is_admin:
            stmt = stmt.where(Instance.project_id == caller.project_id)
        if lock:
            stmt = stmt.with_for_update()
        instance = session.scalar(stmt)
        if instance is None:
            raise errors.NotFound(f"Instance {server_id} could not be found.")
        return instance

    @staticmethod
    def attributes(session: Session, instance: Instance) -> ServerAttributes:
        """The API's attributes; instances made by the core alone get defaults."""
        attrs = session.get(ServerAttributes, instance.id)
        if attrs is None:
            attrs = ServerAttributes(
                instance_id=instance.id,
                flavor={},
                security_groups=[],
                scheduler_hints={},
                hostname=hostname_for(instance.name, f"server-{instance.id}"),
                locked=False,
            )
            session.add(attrs)
        return attrs

    # -- create -------------------------------------------------------------------------------

    def check(self, session: Session, caller: AuthContext, request: BootRequest) -> BootChecks:
        """The create's checks that only read what rarely changes (limits, flavor, image,
        key pair, zone, host).

        Any unit of work will do: the compute API runs them in a read-only one before
        the write transaction, so that SQLite's single writer holds its lock only for
        what must be consistent with the writes (quota, addresses, server groups)."""
        project_id = caller.project_id
        if not project_id:
            raise errors.Forbidden("Creating a server needs a project-scoped token.")
        limits = quotas.limits_for(session, project_id)
        flavor, extra_specs = self._flavor(session, caller, request.flavor_id)
        if request.image_id:
            self._check_image(session, caller, request.image_id, flavor)
        else:
            raise errors.BadRequest(
                "Block Device Mapping is Invalid: booting from a volume is not available "
                "(this cloud has no block storage yet); give an imageRef."
            )
        key = keypairs.for_server(session, caller.user_id, request.key_name)
        # Every project has one security group, "default", and no way to make others
        # yet: a server asking for another would be left without the rules it expects.
        for group_name in request.security_groups:
            if group_name != DEFAULT_SECURITY_GROUP:
                raise errors.BadRequest(
                    f"Unable to find security_group with name or id '{group_name}'"
                )
        zone = request.availability_zone
        if zone and not nodes.zones(session).get(zone):
            raise errors.BadRequest("The requested availability zone is not available")
        node_id = self._node(session, request.host) if request.host else ""
        networks = self._networks(session, caller, request.networks)
        return BootChecks(limits, flavor, extra_specs, key, node_id, networks)

    def create(
        self,
        session: Session,
        caller: AuthContext,
        request: BootRequest,
        request_id: str,
        checks: BootChecks | None = None,
    ) -> Booted:
        """The servers, with `checks` from `check` (made in this unit of work if None)."""
        checks = checks or self.check(session, caller, request)
        project_id = caller.project_id or ""
        limits, flavor, key, node_id = checks.limits, checks.flavor, checks.key, checks.node_id
        group = (
            server_groups.group_for_hint(session, request.group_id, project_id)
            if request.group_id
            else None
        )
        quotas.check_metadata_items(limits["metadata_items"], len(request.metadata))
        if request.max_count > 1 and any(n.fixed_ip for n in request.networks or ()):
            raise errors.BadRequest(
                "max_count cannot be greater than 1 if a fixed_ip is specified."
            )
        count = self._count(session, project_id, flavor, request, limits)
        networks = [
            (network or self.ipam.project_network(session, project_id), fixed_ip)
            for network, fixed_ip in checks.networks
        ]
        reservation_id = new_reservation_id()
        snapshot = flavor_snapshot(flavor, checks.extra_specs)
        created: list[Instance] = []
        for index in range(count):
            name = request.name if count == 1 else f"{request.name}-{index + 1}"
            instance_id = str(uuid.uuid4())
            interfaces = [
                self.ipam.allocate(session, network, project_id, instance_id, fixed_ip)
                for network, fixed_ip in networks
            ]
            same, different = self._placement(session, request, group)
            spec = operations.InstanceSpec(
                project_id=project_id,
                user_id=caller.user_id,
                name=name,
                image_id=request.image_id,
                mem_mb=flavor.ram,
                vcpus=flavor.vcpus,
                disk_gb=flavor.disk,
                availability_zone=request.availability_zone or "",
                user_data=request.user_data or "",
                metadata=dict(request.metadata),
                node_id=node_id,
                same_node_as=same,
                different_node_from=different,
                networking=_networking(interfaces[0]) if interfaces else None,
            )
            [instance] = operations.create_instances(session, spec, 1, limits, [instance_id])
            prepared.run(
                session,
                rows.insert_into(ServerAttributes.__table__),
                {
                    "instance_id": instance.id,
                    "flavor_id": flavor.id,
                    "flavor": snapshot,
                    "key_name": key.name if key else None,
                    "key_data": key.public_key if key else None,
                    "description": request.description,
                    "hostname": hostname_for(name, f"server-{instance.id}"),
                    "reservation_id": reservation_id,
                    "launch_index": index,
                    "config_drive": request.config_drive,
                    "user_data": request.user_data,
                    "access_ip_v4": request.access_ip_v4,
                    "access_ip_v6": request.access_ip_v6,
                    "disk_config": request.disk_config,
                    "security_groups": list(request.security_groups),
                    "scheduler_hints": dict(request.hints),
                    "locked": False,
                },
            )
            session.add_all(
                ServerMetadata(instance_id=instance.id, key=k, value=v)
                for k, v in request.metadata.items()
            )
            session.add_all(
                ServerTag(instance_id=instance.id, tag=t) for t in dict.fromkeys(request.tags)
            )
            if group is not None:
                server_groups.add_member(session, group, instance.id)
            actions.record(session, instance, actions.CREATE, caller, request_id)
            created.append(instance)
        session.flush()
        return Booted(created, reservation_id)

    @staticmethod
    def _flavor(
        session: Session, caller: AuthContext, flavor_id: str
    ) -> tuple[flavors.FlavorSize, dict[str, str]]:
        try:
            flavor = flavors.get_flavor_size(session, flavor_id, caller.project_id, caller.is_admin)
        except errors.NotFound as exc:
            raise errors.BadRequest("Invalid flavorRef provided.") from exc
        if flavor.disabled:
            raise errors.BadRequest("Flavor is disabled.")
        return flavor, flavors.extra_specs(session, flavor.id)

    @staticmethod
    def _check_image(
        session: Session, caller: AuthContext, image_id: str, flavor: flavors.FlavorSize
    ) -> None:
        check_image(session, caller, image_id, flavor.ram, flavor.disk)

    @staticmethod
    def _node(session: Session, host: str) -> str:
        node = session.scalar(
            select(ComputeNode.uuid)
            .where(ComputeNode.hostname == host, ComputeNode.connected.is_(True))
            .limit(1)
        )
        if node is None:
            raise errors.BadRequest(f"Compute host {host} could not be found.")
        return node

    @staticmethod
    def _placement(
        session: Session, request: BootRequest, group: ServerGroup | None
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Instances this one must share a node with, and those it must avoid: the hints,
        and the group's members (this request's earlier servers among them)."""
        same, different = list(request.same_host), list(request.different_host)
        if group is not None:
            join, avoid = server_groups.placement_constraints(session, group)
            same += join
            different += avoid
        return tuple(dict.fromkeys(same)), tuple(dict.fromkeys(different))

    @staticmethod
    def _count(
        session: Session,
        project_id: str,
        flavor: flavors.FlavorSize,
        request: BootRequest,
        limits: Mapping[str, int],
    ) -> int:
        """As many servers as asked for, down to min_count when the quota has less room."""
        if request.min_count > request.max_count:
            raise errors.BadRequest("min_count must be <= max_count")
        if request.min_count == request.max_count:
            return request.max_count  # all or none: the reservation itself decides
        used = quota.usage(session, project_id)
        per_server = {"instances": 1, "cores": flavor.vcpus, "ram": flavor.ram}
        allowed = request.max_count
        tightest = None
        for resource, delta in per_server.items():
            limit = limits.get(resource, -1)
            if limit < 0 or delta <= 0:
                continue
            room = max(0, (limit - used.get(resource, 0)) // delta)
            if room < allowed:
                allowed, tightest = room, resource
        if allowed < request.min_count and tightest is not None:
            raise quota.QuotaExceeded(
                tightest,
                per_server[tightest] * request.min_count,
                used.get(tightest, 0),
                limits[tightest],
            )
        return allowed

    def _networks(
        self,
        session: Session,
        caller: AuthContext,
        requested: tuple[NetworkRequest, ...] | None,
    ) -> list[tuple[NetworkRef | None, str | None]]:
        project_id = caller.project_id or ""
        if requested is None:
            return [(self.ipam.find_project_network(session, project_id), None)]
        if len(requested) > 1:
            raise errors.BadRequest("A server can have one network interface here.")
        return [
            (
                self.ipam.network_for(session, project_id, item.network_id, caller.is_admin)
                if item.network_id
                else self.ipam.find_project_network(session, project_id),
                item.fixed_ip,
            )
            for item in requested
        ]

    # -- changes ---------------------------------------------------------------------------

    @staticmethod
    def check_unlocked(caller: AuthContext, attrs: ServerAttributes) -> None:
        """A locked server refuses changes from anyone but an administrator."""
        if attrs.locked and not caller.is_admin:
            raise errors.Conflict(f"Instance {attrs.instance_id} is locked")

    def update(
        self, session: Session, instance: Instance, changes: Mapping[str, Any]
    ) -> ServerAttributes:
        """Rename, describe, set access addresses; no state check (Nova has none)."""
        attrs = self.attributes(session, instance)
        if "name" in changes:
            instance.name = changes["name"]
        for field in ("description", "access_ip_v4", "access_ip_v6", "disk_config"):
            if field in changes:
                setattr(attrs, field, changes[field])
        instance.updated_at = utcnow()
        return attrs

    def delete(
        self,
        session: Session,
        caller: AuthContext,
        instance: Instance,
        request_id: str,
        action: str = actions.DELETE,
    ) -> None:
        self.check_unlocked(caller, self.attributes(session, instance))
        operations.delete_instance(session, instance)
        self.ipam.release(session, [instance.id])
        actions.record(session, instance, action, caller, request_id)

    def stop(self, session: Session, caller: AuthContext, instance: Instance, rid: str) -> None:
        self.check_unlocked(caller, self.attributes(session, instance))
        operations.stop_instance(session, instance)
        actions.record(session, instance, actions.STOP, caller, rid)

    def start(self, session: Session, caller: AuthContext, instance: Instance, rid: str) -> None:
        self.check_unlocked(caller, self.attributes(session, instance))
        operations.start_instance(session, instance)
        actions.record(session, instance, actions.START, caller, rid)

    def reboot(
        self, session: Session, caller: AuthContext, instance: Instance, hard: bool, rid: str
    ) -> None:
        self.check_unlocked(caller, self.attributes(session, instance))
        if not hard and instance.vm_state != states.ACTIVE:
            # A soft reboot asks a running guest; anything else needs a hard one.
            raise errors.Conflict(
                f"Cannot 'reboot' instance {instance.id} while it is in vm_state "
                f"{instance.vm_state}"
            )
        operations.reboot_instance(session, instance, hard=hard)
        actions.record(session, instance, actions.REBOOT, caller, rid)

    def lock(
        self,
        session: Session,
        caller: AuthContext,
        instance: Instance,
        reason: str | None,
        rid: str,
    ) -> None:
        attrs = self.attributes(session, instance)
        attrs.locked = True
        attrs.locked_by = "owner" if caller.project_id == instance.project_id else "admin"
        attrs.locked_reason = reason
        actions.record(session, instance, actions.LOCK, caller, rid)

    def unlock(
        self,
        session: Session,
        caller: AuthContext,
        instance: Instance,
        may_override: bool,
        rid: str,
    ) -> None:
        """`may_override`: the caller may lift an administrator's lock (policy decides)."""
        attrs = self.attributes(session, instance)
        owner = caller.project_id == instance.project_id
        if attrs.locked and attrs.locked_by == "admin" and owner and not may_override:
            raise errors.Forbidden("The server was locked by an administrator.")
        attrs.locked = False
        attrs.locked_by = None
        attrs.locked_reason = None
        actions.record(session, instance, actions.UNLOCK, caller, rid)

    # -- metadata and tags -------------------------------------------------------------------

    def _check_editable(
        self, session: Session, caller: AuthContext, instance: Instance, what: str
    ) -> None:
        self.check_unlocked(caller, self.attributes(session, instance))
        if instance.vm_state not in EDITABLE_STATES:
            raise errors.Conflict(
                f"Cannot '{what}' instance {instance.id} while it is in vm_state "
                f"{instance.vm_state}"
            )
        if instance.task_state is not None:
            raise errors.Conflict(
                f"Cannot '{what}' instance {instance.id} while it is in task_state "
                f"{instance.task_state}"
            )

    @staticmethod
    def metadata(session: Session, instance: Instance) -> dict[str, str]:
        found = session.execute(
            select(ServerMetadata.key, ServerMetadata.value).where(
                ServerMetadata.instance_id == instance.id
            )
        )
        return dict(found.tuples().all())

    def set_metadata(
        self,
        session: Session,
        caller: AuthContext,
        instance: Instance,
        items: Mapping[str, str],
        replace: bool,
    ) -> dict[str, str]:
        """Merge `items` into the metadata, or make them all of it; returns the result."""
        self._check_editable(session, caller, instance, "update_metadata")
        limit = quotas.limits_for(session, instance.project_id)["metadata_items"]
        current = {} if replace else self.metadata(session, instance)
        result = {**current, **items}
        quotas.check_metadata_items(limit, len(result))
        if replace:
            session.execute(delete(ServerMetadata).where(ServerMetadata.instance_id == instance.id))
            session.add_all(
                ServerMetadata(instance_id=instance.id, key=k, value=v) for k, v in result.items()
            )
        else:
            for key, value in items.items():
                session.merge(ServerMetadata(instance_id=instance.id, key=key, value=value))
        instance.updated_at = utcnow()
        return result

    def delete_metadata(
        self, session: Session, caller: AuthContext, instance: Instance, key: str
    ) -> None:
        self._check_editable(session, caller, instance, "delete_metadata")
        row = session.get(ServerMetadata, (instance.id, key))
        if row is None:
            raise errors.NotFound("Metadata item was not found")
        session.delete(row)
        instance.updated_at = utcnow()

    @staticmethod
    def tags(session: Session, instance: Instance) -> list[str]:
        return list(
            session.scalars(
                select(ServerTag.tag)
                .where(ServerTag.instance_id == instance.id)
                .order_by(ServerTag.tag)
            )
        )

    def _check_tags_editable(self, instance: Instance) -> None:
        if instance.vm_state not in EDITABLE_STATES:
            raise errors.Conflict(
                f"Cannot 'update tag' instance {instance.id} while it is in vm_state "
                f"{instance.vm_state}"
            )

    def set_tags(self, session: Session, instance: Instance, tags: Sequence[str]) -> list[str]:
        self._check_tags_editable(instance)
        unique = list(dict.fromkeys(tags))
        if len(unique) > MAX_TAGS:
            raise errors.BadRequest(f"The number of tags exceeded the per-server limit {MAX_TAGS}")
        session.execute(delete(ServerTag).where(ServerTag.instance_id == instance.id))
        session.add_all(ServerTag(instance_id=instance.id, tag=t) for t in unique)
        instance.updated_at = utcnow()
        return sorted(unique)

    def add_tag(self, session: Session, instance: Instance, tag: str) -> bool:
        """True when the tag is new (201), False when it was there already (204)."""
        self._check_tags_editable(instance)
        if session.get(ServerTag, (instance.id, tag)) is not None:
            return False
        if len(self.tags(session, instance)) >= MAX_TAGS:
            raise errors.BadRequest(f"The number of tags exceeded the per-server limit {MAX_TAGS}")
        session.add(ServerTag(instance_id=instance.id, tag=tag))
        instance.updated_at = utcnow()
        return True

    def delete_tag(self, session: Session, instance: Instance, tag: str | None) -> None:
        """One tag (404 when absent), or every tag when `tag` is None."""
        self._check_tags_editable(instance)
        if tag is None:
            session.execute(delete(ServerTag).where(ServerTag.instance_id == instance.id))
        else:
            row = session.get(ServerTag, (instance.id, tag))
            if row is None:
                raise errors.NotFound(f"Tag {tag} could not be found.")
            session.delete(row)
        instance.updated_at = utcnow()


class ImageSize(Protocol):
    """What decides whether a flavor can boot an image (an Image, or a row of its columns)."""

    min_ram: int
    min_disk: int
    size: int | None


# Built once and prepared: every create and rebuild checks its image.
_BOOT_IMAGE = image_query.VisibleTo(
    select(Image.status, Image.min_ram, Image.min_disk, Image.size).where(
        Image.id == bindparam("image")
    )
)


def check_image(
    session: Session,
    caller: AuthContext,
    image_id: str,
    ram_mb: int,
    disk_gb: int,
    not_found: str = "Can not find requested image",
) -> None:
    """400 unless the caller sees `image_id`, it is active and a flavor of this size
    can boot it (create and rebuild)."""
    who = ImageCaller(caller.project_id, caller.user_id, caller.is_admin)
    stmt, params = _BOOT_IMAGE.pick(who)
    image = prepared.run(session, stmt, {"image": image_id, **params}).first()
    if image is None:
        raise errors.BadRequest(not_found)
    if image.status != "active":
        raise errors.BadRequest(f"Image {image_id} is not active.")
    check_image_fits(image, ram_mb, disk_gb)


def check_image_fits(image: ImageSize, ram_mb: int, disk_gb: int) -> None:
    """400 unless a flavor of this size can hold `image` (create, rebuild and resize;
    a flavor with no disk size takes any)."""
    if image.min_ram > ram_mb:
        raise errors.BadRequest("Flavor's memory is too small for requested image.")
    if disk_gb and (image.min_disk > disk_gb or (image.size or 0) > disk_gb * 1024**3):
        raise errors.BadRequest("Flavor's disk is too small for requested image.")


def _networking(interface: Interface) -> P.Networking:
    return P.Networking(
        mac=interface.mac,
        ip=interface.ip,
        subnet=interface.cidr,
        gateway=interface.gateway or "",
        network_id=interface.network_id,
    )
