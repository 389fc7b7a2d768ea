"""POST /servers/{id}/action: os-start, os-stop, reboot, lock, unlock, forceDelete.

Every action answers 202 with no body once its change (and its command for the
node) is committed; the server's status then follows the node's reports.
Actions Nova has that the launcher protocol cannot carry yet (pause, suspend,
console output, snapshots, resize, rebuild, ...) answer 501, as Nova does for a
feature its driver lacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import falcon
from sqlalchemy.orm import Session

from ciaostack.compat.nova import common, server_schemas
from ciaostack.compat.nova.servers import Compute, target_of
from ciaostack.core import errors
from ciaostack.core.compute import instance_actions as actions
from ciaostack.core.db.models import Instance
from ciaostack.core.identity.context import AuthContext

ONE_ACTION = {"type": "object", "minProperties": 1, "maxProperties": 1}
# Nova's actions that need the node to do something the launcher cannot do yet.
NOT_AVAILABLE = frozenset(
    {
        "os-getConsoleOutput",
        "pause",
        "unpause",
        "suspend",
        "resume",
        "createImage",
        "createBackup",
        "rebuild",
        "resize",
        "confirmResize",
        "revertResize",
        "migrate",
        "os-migrateLive",
        "evacuate",
        "shelve",
        "shelveOffload",
        "unshelve",
        "rescue",
        "unrescue",
        "changePassword",
        "trigger_crash_dump",
        "restore",
        "os-resetState",
        "injectNetworkInfo",
        "resetNetwork",
        "addSecurityGroup",
        "removeSecurityGroup",
    }
)


class NotAvailable(errors.CoreError):
    status = 501
    title = "Not Implemented"


@dataclasses.dataclass(frozen=True)
class Call:
    """One action request, as its handler sees it."""

    compute: Compute
    req: falcon.Request
    session: Session
    auth: AuthContext
    instance: Instance
    body: dict[str, Any]

    @property
    def request_id(self) -> str:
        return self.req.context.request_id


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


# action -> (policy rule, body schema (None: depends on the microversion), handler)
HANDLERS: dict[str, tuple[str, dict[str, Any] | None, Callable[[Call], None]]] = {
    "os-start": ("os_compute_api:servers:start", server_schemas.START, _start),
    "os-stop": ("os_compute_api:servers:stop", server_schemas.STOP, _stop),
    "reboot": ("os_compute_api:servers:reboot", server_schemas.REBOOT, _reboot),
    "lock": ("os_compute_api:os-lock-server:lock", None, _lock),
    "unlock": ("os_compute_api:os-lock-server:unlock", server_schemas.UNLOCK, _unlock),
    "forceDelete": (
        "os_compute_api:os-deferred-delete:force",
        server_schemas.FORCE_DELETE,
        _force_delete,
    ),
}


class ServerAction:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def on_post(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        rt = self.compute.rt
        auth = common.caller(req)
        body = common.read_body(req, ONE_ACTION)
        [name] = body
        if name in NOT_AVAILABLE:
            with rt.db.session(readonly=True) as session:
                self.compute.servers.get(session, auth, server_id)
            raise NotAvailable(
                f"The '{name}' action is not available: the compute nodes cannot carry it out yet."
            )
        if name not in HANDLERS:
            raise errors.BadRequest(f"There is no such action: {name}")
        rule, schema, handler = HANDLERS[name]
        common.read_body(req, schema or server_schemas.lock(common.microversion(req)))
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, rule, target_of(instance))
            handler(Call(self.compute, req, session, auth, instance, body))
        resp.status = falcon.HTTP_202
