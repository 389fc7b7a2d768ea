"""POST /servers/{id}/action: the server actions the compute nodes carry out.

os-start, os-stop, reboot, pause, unpause, suspend, resume, rebuild, resize,
migrate, confirmResize, revertResize, createImage, createBackup, shelve,
shelveOffload and unshelve change the server
(and queue the node's command) in one transaction and answer at once, as Nova
does: 202 with no body for most, the server for a rebuild, the image id for a
snapshot or backup, 204 for confirmResize. The server's status then follows
the node's reports. os-getConsoleOutput asks the node and waits (bounded) for
its answer. lock, unlock, forceDelete, addSecurityGroup, removeSecurityGroup
and os-resetState need no node; injectNetworkInfo has nothing to send one (a
node has the instance's network from its START, and it never changes); restore
is always 409 (no delete is deferred). Nova's actions that nothing here can
carry out (live migration, rescue...) answer 501, as Nova does for a feature
its driver lacks.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import falcon
from sqlalchemy.orm import Session

from ciaostack.compat.microversion import Version
from ciaostack.compat.nova import common, server_schemas
from ciaostack.compat.nova.servers import Compute, _ip, _user_data, last_segment, target_of
from ciaostack.core import errors
from ciaostack.core.compute import instance_actions as actions
from ciaostack.core.compute import security_groups
from ciaostack.core.compute.server_actions import RebuildRequest, ServerActions
from ciaostack.core.compute.servers import new_password
from ciaostack.core.db.models import Instance
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.images import ImageService
from ciaostack.core.images.snapshots import Rotation, UploadGrants

ONE_ACTION = {"type": "object", "minProperties": 1, "maxProperties": 1}
# Nova's actions that need the node to do something the launcher cannot do.
NOT_AVAILABLE = frozenset(
    {
        "os-migrateLive",
        "evacuate",
        "rescue",
        "unrescue",
        "changePassword",
        "trigger_crash_dump",
        "resetNetwork",
    }
)
# What Nova strips from console output (control characters but tab and newline).
_CONSOLE_JUNK = re.compile("[\x00-\x08\x0b-\x1f]")


@dataclasses.dataclass(frozen=True)
class Call:
    """One action request, as its handler sees it."""

    compute: Compute
    actions: ServerActions
    req: falcon.Request
    session: Session
    auth: AuthContext
    instance: Instance
    body: dict[str, Any]

    @property
    def request_id(self) -> str:
        return self.req.context.request_id

    @property
    def version(self) -> Version:
        return common.microversion(self.req)


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a handler answers beyond the default 202 with no body. `finish` runs after
    the action's transaction has committed and returns the body (the console output
    waits for the node there)."""

    status: str = falcon.HTTP_202
    media: dict[str, Any] | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    finish: Callable[[], dict[str, Any]] | None = None


def _start(call: Call) -> None:
    call.compute.servers.start(call.session, call.auth, call.instance, call.request_id)


def _stop(call: Call) -> None:
    call.compute.servers.stop(call.session, call.auth, call.instance, call.request_id)


def _reboot(call: Call) -> None:
    hard = call.body["reboot"]["type"].upper() == "HARD"
    call.compute.servers.reboot(call.session, call.auth, call.instance, hard, call.request_id)


def _lock(call: Call) -> None:
    reason = (call.body.get("lock") or {}).get("locked_reason")
    call.compute.servers.lock(call.session, call.auth, call.instance, reason, call.request_id)


def _unlock(call: Call) -> None:
    override = common.allowed(
        call.req,
        call.compute.rt,
        "os_compute_api:os-lock-server:unlock:unlock_override",
        target_of(call.instance),
    )
    call.compute.servers.unlock(call.session, call.auth, call.instance, override, call.request_id)


def _force_delete(call: Call) -> None:
    call.compute.servers.delete(
        call.session, call.auth, call.instance, call.request_id, actions.FORCE_DELETE
    )


def _simple(action: str, status: str = falcon.HTTP_202) -> Callable[[Call], Answer]:
    """pause, unpause, suspend, resume, confirmResize (204, as Nova), revertResize."""

    def handler(call: Call) -> Answer:
        call.actions.simple(call.session, call.auth, call.instance, action, call.request_id)
        return Answer(status=status)

    return handler


def _rebuild(call: Call) -> Answer:
    """202 with the server as Nova shows it after a rebuild: the update view, plus
    key_name (2.54) and user_data (2.57), and the admin password. (From 2.75 Nova
    shows the full detail view; this cloud's maximum microversion is 2.74.)"""
    body = call.body["rebuild"]
    if body.get("personality"):
        raise errors.BadRequest("Personality files are not supported; use user_data.")
    if body.get("trusted_image_certificates"):
        raise errors.BadRequest("Image certificate validation is not available.")
    attributes: dict[str, Any] = {}
    for field, name in (("description", "description"), ("OS-DCF:diskConfig", "disk_config")):
        if field in body:
            attributes[name] = body[field]
    for field, version in (("accessIPv4", 4), ("accessIPv6", 6)):
        if field in body:
            attributes[f"access_ip_v{version}"] = _ip(body[field], version, field)
    if "user_data" in body:
        attributes["user_data"] = _user_data(body["user_data"])
    request = RebuildRequest(
        image_id=body["imageRef"],
        name=body.get("name"),
        metadata=body.get("metadata"),
        attributes=attributes,
        set_key="key_name" in body,
        key_name=body.get("key_name"),
    )
    call.actions.rebuild(call.session, call.auth, call.instance, request, call.request_id)
    call.session.flush()
    server = call.compute.render(call.req, call.auth, call.session, call.instance, updated=True)
    attrs = call.compute.servers.attributes(call.session, call.instance)
    if call.version.matches("2.54"):
        server["key_name"] = attrs.key_name
    if call.version.matches("2.57"):
        server["user_data"] = attrs.user_data
    server["adminPass"] = body.get("adminPass") or new_password()
    location = common.resource_links(call.req, "servers", call.instance.id)[0]["href"]
    return Answer(media={"server": server}, headers={"Location": location})


def _migrate(call: Call) -> None:
    host = (call.body["migrate"] or {}).get("host")
    if host is not None:
        common.authorize(
            call.req,
            call.compute.rt,
            "os_compute_api:os-migrate-server:migrate:host",
            target_of(call.instance),
        )
    call.actions.migrate(call.session, call.auth, call.instance, host, call.request_id)


def _reset_state(call: Call) -> None:
    state = call.body["os-resetState"]["state"]
    call.actions.reset_state(call.session, call.auth, call.instance, state, call.request_id)


def _inject_network_info(call: Call) -> None:
    """Nothing to do: the addresses a node gave the instance at its START are the ones
    it keeps (as with Nova's libvirt driver, whose injection does nothing either)."""


def _restore(call: Call) -> None:
    call.actions.restore(call.instance)


def _shelve(call: Call) -> None:
    call.actions.shelve(call.session, call.auth, call.instance, call.request_id)


def _shelve_offload(call: Call) -> None:
    call.actions.shelve_offload(call.session, call.auth, call.instance, call.request_id)


def _unshelve(call: Call) -> None:
    call.actions.unshelve(call.session, call.auth, call.instance, call.request_id)


def _resize(call: Call) -> None:
    flavor_id = last_segment(call.body["resize"]["flavorRef"])
    call.actions.resize(call.session, call.auth, call.instance, flavor_id, call.request_id)


def _image_answer(call: Call, image_id: str, location: bool = True) -> Answer:
    """The image id in the body from 2.45, in the Location header before (the image
    API's URL for it, which is where clients fetch it from)."""
    if call.version.matches("2.45"):
        return Answer(media={"image_id": image_id})
    if not location:
        return Answer()
    return Answer(headers={"Location": f"{call.req.prefix}/image/v2/images/{image_id}"})


def _create_image(call: Call) -> Answer:
    entity = call.body["createImage"]
    image_id = call.actions.create_image(
        call.session,
        call.auth,
        call.instance,
        entity["name"],
        entity.get("metadata") or {},
        call.request_id,
        metadata_quota=not call.version.matches("2.39"),
    )
    return _image_answer(call, image_id)


def _create_backup(call: Call) -> Answer:
    """As createImage, plus the rotation; before 2.45 a rotation of 0 (the new backup
    itself is deleted once stored) answers without a Location, as Nova."""
    entity = call.body["createBackup"]
    rotation = Rotation(call.instance.id, entity["backup_type"], int(entity["rotation"]))
    image_id = call.actions.create_backup(
        call.session,
        call.auth,
        call.instance,
        entity["name"],
        rotation,
        entity.get("metadata") or {},
        call.request_id,
        metadata_quota=not call.version.matches("2.39"),
    )
    return _image_answer(call, image_id, location=rotation.keep > 0)


def _security_group_name(call: Call, action: str) -> str:
    name = call.body[action]["name"]
    if not name.strip():
        raise errors.BadRequest("Security group name cannot be empty")
    return name


def _add_security_group(call: Call) -> None:
    name = _security_group_name(call, "addSecurityGroup")
    project_id = call.auth.project_id or call.instance.project_id
    security_groups.add(call.session, call.instance, name, project_id)


def _remove_security_group(call: Call) -> None:
    name = _security_group_name(call, "removeSecurityGroup")
    project_id = call.auth.project_id or call.instance.project_id
    security_groups.remove(call.session, call.instance, name, project_id)


def _console_output(call: Call) -> Answer:
    """200 with the tail of the console log once the node has answered."""
    raw = call.body["os-getConsoleOutput"].get("length")
    length = None if raw is None else int(raw)
    if length is not None and length < -1:
        raise errors.BadRequest("Invalid input for field/attribute length: must be >= -1")
    request_id = call.actions.request_console(
        call.session, call.instance, None if length == -1 else length
    )
    db, instance_id = call.compute.rt.db, call.instance.id

    def finish() -> dict[str, Any]:
        output = call.actions.wait_console(db, instance_id, request_id)
        return {"output": _CONSOLE_JUNK.sub("", output)}

    return Answer(status=falcon.HTTP_200, finish=finish)


Schema = dict[str, Any] | Callable[[Version], dict[str, Any]]
# action -> (policy rule, body schema (or its builder per microversion), handler)
HANDLERS: dict[str, tuple[str, Schema, Callable[[Call], Answer | None]]] = {
    "os-start": ("os_compute_api:servers:start", server_schemas.START, _start),
    "os-stop": ("os_compute_api:servers:stop", server_schemas.STOP, _stop),
    "reboot": ("os_compute_api:servers:reboot", server_schemas.REBOOT, _reboot),
    "lock": ("os_compute_api:os-lock-server:lock", server_schemas.lock, _lock),
    "unlock": ("os_compute_api:os-lock-server:unlock", server_schemas.UNLOCK, _unlock),
    "forceDelete": (
        "os_compute_api:os-deferred-delete:force",
        server_schemas.FORCE_DELETE,
        _force_delete,
    ),
    "os-resetState": (
        "os_compute_api:os-admin-actions:reset_state",
        server_schemas.RESET_STATE,
        _reset_state,
    ),
    "injectNetworkInfo": (
        "os_compute_api:os-admin-actions:inject_network_info",
        server_schemas.INJECT_NETWORK_INFO,
        _inject_network_info,
    ),
    "restore": (
        "os_compute_api:os-deferred-delete:restore",
        server_schemas.RESTORE,
        _restore,
    ),
    "pause": (
        "os_compute_api:os-pause-server:pause",
        server_schemas.PAUSE,
        _simple(actions.PAUSE),
    ),
    "unpause": (
        "os_compute_api:os-pause-server:unpause",
        server_schemas.UNPAUSE,
        _simple(actions.UNPAUSE),
    ),
    "suspend": (
        "os_compute_api:os-suspend-server:suspend",
        server_schemas.SUSPEND,
        _simple(actions.SUSPEND),
    ),
    "resume": (
        "os_compute_api:os-suspend-server:resume",
        server_schemas.RESUME,
        _simple(actions.RESUME),
    ),
    "rebuild": ("os_compute_api:servers:rebuild", server_schemas.rebuild, _rebuild),
    "resize": ("os_compute_api:servers:resize", server_schemas.RESIZE, _resize),
    "migrate": ("os_compute_api:os-migrate-server:migrate", server_schemas.migrate, _migrate),
    "shelve": ("os_compute_api:os-shelve:shelve", server_schemas.SHELVE, _shelve),
    "shelveOffload": (
        "os_compute_api:os-shelve:shelve_offload",
        server_schemas.SHELVE_OFFLOAD,
        _shelve_offload,
    ),
    "unshelve": ("os_compute_api:os-shelve:unshelve", server_schemas.UNSHELVE, _unshelve),
    "confirmResize": (
        "os_compute_api:servers:confirm_resize",
        server_schemas.CONFIRM_RESIZE,
        _simple(actions.CONFIRM_RESIZE, falcon.HTTP_204),
    ),
    "revertResize": (
        "os_compute_api:servers:revert_resize",
        server_schemas.REVERT_RESIZE,
        _simple(actions.REVERT_RESIZE),
    ),
    "createImage": (
        "os_compute_api:servers:create_image",
        server_schemas.CREATE_IMAGE,
        _create_image,
    ),
    "createBackup": (
        "os_compute_api:os-create-backup",
        server_schemas.CREATE_BACKUP,
        _create_backup,
    ),
    "addSecurityGroup": (
        "os_compute_api:os-security-groups:add",
        server_schemas.ADD_SECURITY_GROUP,
        _add_security_group,
    ),
    "removeSecurityGroup": (
        "os_compute_api:os-security-groups:remove",
        server_schemas.REMOVE_SECURITY_GROUP,
        _remove_security_group,
    ),
    "os-getConsoleOutput": (
        "os_compute_api:os-console-output",
        server_schemas.CONSOLE_OUTPUT,
        _console_output,
    ),
}


class ServerAction:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        conf = compute.rt.conf
        self.actions = ServerActions(
            compute.servers,
            ImageService(conf, compute.rt.db).images,
            UploadGrants(conf.key_repository),
            conf.public_url,
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        rt = self.compute.rt
        auth = common.caller(req)
        body = common.read_body(req, ONE_ACTION)
        [name] = body
        if name in NOT_AVAILABLE:
            with rt.db.session(readonly=True) as session:
                self.compute.servers.get(session, auth, server_id)
            raise errors.NotAvailable(
                f"The '{name}' action is not available: the compute nodes cannot carry it out yet."
            )
        if name not in HANDLERS:
            raise errors.BadRequest(f"There is no such action: {name}")
        rule, schema, handler = HANDLERS[name]
        common.read_body(
            req, schema if isinstance(schema, dict) else schema(common.microversion(req))
        )
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, rule, target_of(instance))
            answer = handler(Call(self.compute, self.actions, req, session, auth, instance, body))
        answer = answer or Answer()
        resp.status = answer.status
        for header, value in answer.headers.items():
            resp.set_header(header, value)
        media = answer.finish() if answer.finish is not None else answer.media
        if media is not None:
            resp.media = media
