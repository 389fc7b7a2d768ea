"""Server actions beyond start/stop/reboot: pause, suspend, rebuild, resize, snapshot, console.

What the compute API checks around each (lock, state, flavor, image, quota,
metadata limit), the instance action it records, and the controller operation
that changes the instance and queues the node's command, all in the caller's
unit of work. Two need more than one transaction: a snapshot creates its
image record with the instance's task (and the node uploads later), and the
console output is a request to the node whose answer the API waits for.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.compute import flavors, keypairs, nodes, quotas, server_groups
from ciaostack.core.compute import instance_actions as actions
from ciaostack.core.compute.servers import (
    Servers,
    check_image,
    check_image_fits,
    flavor_snapshot,
)
from ciaostack.core.controller import operations, reports, states
from ciaostack.core.db.models import ComputeNode, ConsoleReply, Image, Instance, ServerMetadata
from ciaostack.core.db.session import Database
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.images import snapshots
from ciaostack.core.images.service import Images
from ciaostack.core.ssntp import payloads as P

#: How long an API request waits for a node's console output.
CONSOLE_TIMEOUT = 10.0
_CONSOLE_POLL = 0.1
# Console failures that mean the node has no console to read (Nova's 404).
_NO_CONSOLE = frozenset({P.NO_INSTANCE, P.CONSOLE_FAILURE})

_SIMPLE: dict[str, Callable[[Session, Instance], None]] = {
    actions.PAUSE: operations.pause_instance,
    actions.UNPAUSE: operations.unpause_instance,
    actions.SUSPEND: operations.suspend_instance,
    actions.RESUME: operations.resume_instance,
    actions.CONFIRM_RESIZE: operations.confirm_resize,
    actions.REVERT_RESIZE: operations.revert_resize,
}
# ServerAttributes columns a rebuild may set as given.
REBUILD_ATTRIBUTES = ("description", "access_ip_v4", "access_ip_v6", "disk_config", "user_data")


@dataclasses.dataclass(frozen=True)
class RebuildRequest:
    """What a rebuild asks for; None keeps the current name or metadata ({} clears it)."""

    image_id: str
    name: str | None = None
    metadata: Mapping[str, str] | None = None
    # REBUILD_ATTRIBUTES given in the request, as given (None clears where allowed).
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Whether a key pair was named (2.54), and which (None: remove the key).
    set_key: bool = False
    key_name: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.attributes) - set(REBUILD_ATTRIBUTES)
        if unknown:
            # A caller's bug, not a client's: only these columns are a rebuild's to set.
            raise ValueError(f"a rebuild cannot set {sorted(unknown)}")


class ServerActions:
    def __init__(
        self, servers: Servers, images: Images, grants: snapshots.UploadGrants, public_url: str
    ) -> None:
        self.servers = servers
        self.images = images
        self.grants = grants
        self.public_url = public_url.rstrip("/")

    def _unlocked(self, session: Session, caller: AuthContext, instance: Instance) -> None:
        self.servers.check_unlocked(caller, self.servers.attributes(session, instance))

    def simple(
        self, session: Session, caller: AuthContext, instance: Instance, action: str, rid: str
    ) -> None:
        """pause, unpause, suspend, resume, confirmResize, revertResize."""
        self._unlocked(session, caller, instance)
        _SIMPLE[action](session, instance)
        actions.record(session, instance, action, caller, rid)

    # -- rebuild ------------------------------------------------------------------------------

    def rebuild(
        self,
        session: Session,
        caller: AuthContext,
        instance: Instance,
        request: RebuildRequest,
        rid: str,
    ) -> None:
        self._unlocked(session, caller, instance)
        states.check("rebuild", instance.vm_state, instance.task_state, instance.id)
        flavor = operations.current_flavor(session, instance)
        check_image(
            session,
            caller,
            request.image_id,
            flavor["ram"],
            flavor["disk"],
            not_found="Cannot find image for rebuild",
        )
        attrs = self.servers.attributes(session, instance)
        metadata = self.servers.metadata(session, instance)
        if request.metadata is not None:
            limit = quotas.limits_for(session, instance.project_id)["metadata_items"]
            quotas.check_metadata_items(limit, len(request.metadata))
            metadata = dict(request.metadata)
            session.execute(delete(ServerMetadata).where(ServerMetadata.instance_id == instance.id))
            session.add_all(
                ServerMetadata(instance_id=instance.id, key=k, value=v) for k, v in metadata.items()
            )
        if request.set_key:
            key = keypairs.for_server(session, caller.user_id, request.key_name)
            attrs.key_name = key.name if key else None
            attrs.key_data = key.public_key if key else None
        for name, value in request.attributes.items():
            setattr(attrs, name, value)
        operations.rebuild_instance(
            session,
            instance,
            request.image_id,
            request.name if request.name is not None else instance.name,
            metadata,
            attrs.user_data or "",
        )
        actions.record(session, instance, actions.REBUILD, caller, rid)

    # -- resize ---------------------------------------------------------------------------------

    def resize(
        self, session: Session, caller: AuthContext, instance: Instance, flavor_id: str, rid: str
    ) -> None:
        """To another flavor: on the server's node when it has room (the scheduler checks),
        else on another node that can take it."""
        self._unlocked(session, caller, instance)
        states.check("resize", instance.vm_state, instance.task_state, instance.id)
        try:
            flavor = flavors.get_flavor(session, flavor_id, caller.project_id, caller.is_admin)
        except errors.NotFound as exc:
            raise errors.BadRequest(exc.message) from exc
        current = operations.current_flavor(session, instance)
        if flavor.id == current["id"]:
            raise errors.BadRequest("When resizing, instances must change flavor!")
        if flavor.disabled:
            raise errors.BadRequest(f"Flavor {flavor_id} could not be found.")
        if flavor.disk == 0 and current["disk"] != 0:
            raise errors.BadRequest(
                "Server disk was unable to be resized because: "
                "Resize to zero disk flavor is not allowed."
            )
        image = session.get(Image, instance.image_id) if instance.image_id else None
        if image is not None:
            check_image_fits(image, flavor.ram, flavor.disk)
        wanted = {
            "id": flavor.id,
            **flavor_snapshot(flavor, flavors.extra_specs(session, flavor.id)),
        }
        limits = quotas.limits_for(session, instance.project_id)
        operations.resize_instance(
            session, instance, wanted, limits, server_groups.constraints_now(session, instance)
        )
        actions.record(session, instance, actions.RESIZE, caller, rid)

    def migrate(
        self, session: Session, caller: AuthContext, instance: Instance, host: str | None, rid: str
    ) -> None:
        """To another node with the same flavor (cold migration), `host` if named."""
        self._unlocked(session, caller, instance)
        states.check("migrate", instance.vm_state, instance.task_state, instance.id)
        node_uuid = ""
        if host is not None:
            node = session.scalar(
                select(ComputeNode).where(
                    ComputeNode.hostname == host,
                    ComputeNode.connected.is_(True),
                    ComputeNode.node_type == nodes.COMPUTE,
                )
            )
            if node is None:
                raise errors.BadRequest(f"Compute host {host} could not be found.")
            if node.uuid == instance.node_uuid:
                raise errors.BadRequest("The target host can't be the same one.")
            node_uuid = node.uuid
        operations.migrate_instance(
            session, instance, node_uuid, server_groups.constraints_now(session, instance)
        )
        actions.record(session, instance, actions.MIGRATE, caller, rid)

    def reset_state(
        self, session: Session, caller: AuthContext, instance: Instance, state: str, rid: str
    ) -> None:
        """os-resetState (administrators): `state` is "active" or "error"."""
        reports.reset_state(session, instance, states.RESETTABLE[state])
        actions.record(session, instance, actions.RESET_STATE, caller, rid)

    @staticmethod
    def restore(instance: Instance) -> None:
        """Always refused (409), with Nova's wording: a delete here is never deferred, so
        no server is ever soft-deleted and waiting to be restored."""
        states.check("restore", instance.vm_state, instance.task_state, instance.id)

    # -- snapshot and backup --------------------------------------------------------------------

    def create_image(
        self,
        session: Session,
        caller: AuthContext,
        instance: Instance,
        name: str,
        metadata: Mapping[str, str],
        rid: str,
        metadata_quota: bool = True,
    ) -> str:
        """A queued image owned by the server's project, and the node's task to fill it
        (no lock check: as in Nova, a lock guards against changes, not copies).
        `metadata_quota`: the request's metadata counts against the metadata_items quota
        (Nova before 2.39; from then the image service's own limits apply)."""
        _check_image_metadata(session, instance, metadata, metadata_quota)
        return self._snapshot(
            session, caller, instance, name, {"image_type": "snapshot", **metadata}, None, rid
        )

    def create_backup(
        self,
        session: Session,
        caller: AuthContext,
        instance: Instance,
        name: str,
        rotation: snapshots.Rotation,
        metadata: Mapping[str, str],
        rid: str,
        metadata_quota: bool = True,
    ) -> str:
        """A snapshot marked as a backup of `rotation.backup_type`; once its data is
        stored, the backups beyond the rotation go (see core/images/snapshots.py)."""
        _check_image_metadata(session, instance, metadata, metadata_quota)
        properties = {"image_type": "backup", **metadata, "backup_type": rotation.backup_type}
        return self._snapshot(session, caller, instance, name, properties, rotation, rid)

    # -- shelve -----------------------------------------------------------------------------

    def shelve(self, session: Session, caller: AuthContext, instance: Instance, rid: str) -> None:
        """Keep the disk as an image named `<server>-shelved`, then leave the node."""
        self._unlocked(session, caller, instance)
        self._snapshot(
            session,
            caller,
            instance,
            f"{instance.name}-shelved",
            {"image_type": "snapshot"},
            None,
            rid,
            actions.SHELVE,
        )

    def shelve_offload(
        self, session: Session, caller: AuthContext, instance: Instance, rid: str
    ) -> None:
        self._unlocked(session, caller, instance)
        states.check(actions.SHELVE_OFFLOAD, instance.vm_state, instance.task_state, instance.id)
        operations.offload_instance(session, instance)
        actions.record(session, instance, actions.SHELVE_OFFLOAD, caller, rid)

    def unshelve(self, session: Session, caller: AuthContext, instance: Instance, rid: str) -> None:
        self._unlocked(session, caller, instance)
        operations.unshelve_instance(
            session, instance, server_groups.constraints_now(session, instance)
        )
        actions.record(session, instance, actions.UNSHELVE, caller, rid)

    def _snapshot(
        self,
        session: Session,
        caller: AuthContext,
        instance: Instance,
        name: str,
        properties: Mapping[str, str],
        rotation: snapshots.Rotation | None,
        rid: str,
        action: str | None = None,
    ) -> str:
        action = action or (actions.CREATE_IMAGE if rotation is None else actions.CREATE_BACKUP)
        states.check(action, instance.vm_state, instance.task_state, instance.id)
        own = {"instance_uuid": instance.id, "user_id": caller.user_id}
        if caller.project_id == instance.project_id:
            own["owner_project_name"] = caller.project_name or ""
            own["owner_user_name"] = caller.user_name
        image = snapshots.create_record(
            session,
            self.images,
            name=name,
            owner=instance.project_id,
            base_image_id=instance.image_id,
            min_disk=operations.current_flavor(session, instance)["disk"],
            properties={**own, **properties},
        )
        grant = self.grants.issue(
            snapshots.Grant(image.id, instance.project_id, caller.user_id, instance.id, rotation)
        )
        url = self.public_url + snapshots.UPLOAD_PATH.format(image_id=image.id)
        operations.snapshot_instance(session, instance, image.id, url, grant, action)
        actions.record(session, instance, action, caller, rid)
        return image.id

    # -- console output -------------------------------------------------------------------------

    @staticmethod
    def request_console(session: Session, instance: Instance, length: int | None) -> str:
        """Queue the request to the node; returns the id its answer will carry."""
        request_id = uuid.uuid4().hex
        operations.request_console_output(session, instance, request_id, length)
        return request_id

    @staticmethod
    def wait_console(
        db: Database, instance_id: str, request_id: str, timeout: float = CONSOLE_TIMEOUT
    ) -> str:
        """The node's answer once the controller has stored it; 404 when the node has no
        console for the instance, 409 when the node is gone or silent."""
        deadline = time.monotonic() + timeout
        while True:
            # Polls read only: a write (SQLite: BEGIN IMMEDIATE) would queue with every
            # writer of the cloud ten times a second, for nothing most of the time.
            with db.session(readonly=True) as session:
                reply = session.get(ConsoleReply, request_id)
                if reply is not None:
                    output, error = reply.output, reply.error
            if reply is not None:
                with db.session() as session:
                    session.execute(
                        delete(ConsoleReply).where(ConsoleReply.request_id == request_id)
                    )
                break
            if time.monotonic() >= deadline:
                raise errors.Conflict(
                    f"The compute node of instance {instance_id} did not answer in time."
                )
            time.sleep(_CONSOLE_POLL)
        if error in _NO_CONSOLE:
            raise errors.NotFound("Guest does not have a console available.")
        if error:
            raise errors.Conflict(
                f"Instance {instance_id} is not ready: its node is not available."
            )
        return output or ""


def _check_image_metadata(
    session: Session, instance: Instance, metadata: Mapping[str, str], enforce: bool
) -> None:
    if enforce:
        limit = quotas.limits_for(session, instance.project_id)["metadata_items"]
        quotas.check_metadata_items(limit, len(metadata), image=True)
