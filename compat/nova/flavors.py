"""/flavors: list, detail, show, create, update (2.55), delete; extra specs; flavor
access for private flavors.

Shapes per microversion: `description` from 2.55, `extra_specs` in the flavor
from 2.61 (for callers allowed to read them), `swap` an integer from 2.75
(before, "" when there is none). Administrators list all flavors with
?is_public=None; everyone else sees public flavors and the private ones shared
with their project, never disabled ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import falcon
from sqlalchemy.orm import Session

from ciaostack.compat.nova.common import (
    BOOLEAN,
    BOOLEAN_FALSE,
    BOOLEAN_TRUE,
    DESCRIPTION_PATTERN,
    NAME,
    allowed,
    as_bool,
    authorize,
    caller,
    is_admin,
    limit_and_marker,
    microversion,
    next_links,
    query,
    read_body,
    reject_unknown_params,
    resource_links,
    verify_project_id,
)
from ciaostack.core import errors
from ciaostack.core.compute import flavors
from ciaostack.core.compute.flavors import FlavorQuery, FlavorSpec
from ciaostack.core.db.models import Flavor
from ciaostack.core.runtime import Runtime

MAX_INT = 0x7FFFFFFF
_SIZE = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "maximum": MAX_INT}
_DESCRIPTION = {
    "type": ["string", "null"],
    "minLength": 0,
    "maxLength": 65535,
    "pattern": DESCRIPTION_PATTERN,
}
_CREATE_FIELDS: dict[str, Any] = {
    "name": NAME,
    "id": {
        "type": ["string", "number", "null"],
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$",
    },
    "ram": _SIZE,
    "vcpus": _SIZE,
    "disk": _SIZE,
    "OS-FLV-EXT-DATA:ephemeral": _SIZE,
    "swap": _SIZE,
    "rxtx_factor": {
        "type": ["number", "string"],
        "pattern": r"^[0-9]+(\.[0-9]+)?$",
        "exclusiveMinimum": 0,
        "maximum": 3.40282e38,
    },
    "os-flavor-access:is_public": BOOLEAN,
}


def _create_schema(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "flavor": {
                "type": "object",
                "properties": fields,
                "required": ["name", "ram", "vcpus", "disk"],
                "additionalProperties": False,
            }
        },
        "required": ["flavor"],
        "additionalProperties": False,
    }


CREATE = _create_schema(_CREATE_FIELDS)
CREATE_V255 = _create_schema({**_CREATE_FIELDS, "description": _DESCRIPTION})
UPDATE = {
    "type": "object",
    "properties": {
        "flavor": {
            "type": "object",
            "properties": {"description": _DESCRIPTION},
            "required": ["description"],
            "additionalProperties": False,
        }
    },
    "required": ["flavor"],
    "additionalProperties": False,
}
_SPEC_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
_SPECS = {
    "type": "object",
    "patternProperties": {_SPEC_KEY: {"type": ["string", "number"], "maxLength": 255}},
    "additionalProperties": False,
}
SPECS_CREATE = {
    "type": "object",
    "properties": {"extra_specs": _SPECS},
    "required": ["extra_specs"],
    "additionalProperties": False,
}
SPEC_UPDATE = {**_SPECS, "minProperties": 1, "maxProperties": 1}
_TENANT = {
    "type": "object",
    "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
    "required": ["tenant"],
    "additionalProperties": False,
}
ACTIONS = {
    name: {
        "type": "object",
        "properties": {name: _TENANT},
        "required": [name],
        "additionalProperties": False,
    }
    for name in ("addTenantAccess", "removeTenantAccess")
}
ANY_ACTION = {"type": "object"}  # which action: checked against ACTIONS next
LIST_PARAMS = ("limit", "marker", "is_public", "minRam", "minDisk", "sort_key", "sort_dir")


# -- views ------------------------------------------------------------------------------------


def _basic(req: falcon.Request, flavor: Flavor) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "links": resource_links(req, "flavors", flavor.id),
    }
    if microversion(req).matches("2.55"):
        body["description"] = flavor.description
    return body


def flavor_view(
    req: falcon.Request, flavor: Flavor, extra_specs: dict[str, str] | None = None
) -> dict[str, Any]:
    """The full flavor; `extra_specs` is shown when given (2.61, and the caller may)."""
    mv = microversion(req)
    body = _basic(req, flavor)
    body.update(
        {
            "ram": flavor.ram,
            "disk": flavor.disk,
            "swap": flavor.swap if mv.matches("2.75") else (flavor.swap or ""),
            "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral,
            "OS-FLV-DISABLED:disabled": flavor.disabled,
            "vcpus": flavor.vcpus,
            "os-flavor-access:is_public": flavor.is_public,
            "rxtx_factor": flavor.rxtx_factor,
        }
    )
    if extra_specs is not None:
        body["extra_specs"] = extra_specs
    return body


def _shows_specs(req: falcon.Request, rt: Runtime) -> bool:
    if not microversion(req).matches("2.61"):
        return False
    auth = caller(req)
    return allowed(
        req, rt, "os_compute_api:os-flavor-extra-specs:index", {"project_id": auth.project_id}
    )


def _scope(req: falcon.Request, rt: Runtime) -> tuple[str | None, bool]:
    return caller(req).project_id, is_admin(req, rt)


def _flavor(req: falcon.Request, rt: Runtime, session: Session, flavor_id: str) -> Flavor:
    project_id, admin = _scope(req, rt)
    return flavors.get_flavor(session, flavor_id, project_id, admin)


# -- list -------------------------------------------------------------------------------------


def _int_filter(req: falcon.Request, name: str) -> int | None:
    value = query(req, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise errors.BadRequest(f"Invalid {name} filter [{value}]") from exc


def _is_public(req: falcon.Request, admin: bool) -> bool | None:
    """Only administrators choose: None for all flavors, else public or private ones."""
    value = query(req, "is_public")
    if not admin or value is None:
        return True
    lowered = value.strip().lower()
    if lowered == "none":
        return None
    if lowered in BOOLEAN_TRUE:
        return True
    if lowered in BOOLEAN_FALSE:
        return False
    raise errors.BadRequest(f"Invalid is_public filter [{value}]")


def _choice(req: falcon.Request, name: str, choices: Iterable[str], default: str) -> str:
    value = query(req, name) or default
    if value not in choices:
        raise errors.BadRequest(
            f"Invalid input for query parameters {name}. Value: {value}. "
            f"'{value}' is not one of {sorted(choices)}"
        )
    return value


def _list(req: falcon.Request, rt: Runtime, detail: bool) -> dict[str, Any]:
    reject_unknown_params(req, LIST_PARAMS)
    project_id, admin = _scope(req, rt)
    limit, marker = limit_and_marker(req)
    flavor_query = FlavorQuery(
        project_id=project_id,
        is_admin=admin,
        is_public=_is_public(req, admin),
        min_ram=_int_filter(req, "minRam"),
        min_disk=_int_filter(req, "minDisk"),
        sort_key=_choice(req, "sort_key", flavors.SORT_COLUMNS, "flavorid"),
        sort_dir=_choice(req, "sort_dir", ("asc", "desc"), "asc"),
        limit=limit,
        marker=marker,
    )
    with rt.db.session(readonly=True) as session:
        found = flavors.list_flavors(session, flavor_query)
        specs = (
            flavors.extra_specs_of(session, (f.id for f in found))
            if detail and _shows_specs(req, rt)
            else None
        )
    if detail:
        items = [flavor_view(req, f, specs[f.id] if specs is not None else None) for f in found]
    else:
        items = [_basic(req, f) for f in found]
    body: dict[str, Any] = {"flavors": items}
    collection = "flavors/detail" if detail else "flavors"
    links = next_links(req, collection, len(found), limit, found[-1].id if found else None)
    if links:
        body["flavors_links"] = links
    return body


# -- resources --------------------------------------------------------------------------------


def _size(flavor: dict[str, Any], key: str, minimum: int, label: str) -> int:
    value = int(flavor.get(key, 0))
    if value < minimum:
        raise errors.BadRequest(f"Invalid input received: {label} must be >= {minimum}")
    if value > MAX_INT:
        raise errors.BadRequest(f"Invalid input received: {label} must be <= {MAX_INT}")
    return value


class Flavors:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = _list(req, self.rt, detail=False)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        authorize(req, self.rt, "os_compute_api:os-flavor-manage:create")
        v255 = microversion(req).matches("2.55")
        body = read_body(req, CREATE_V255 if v255 else CREATE)["flavor"]
        flavor_id = body.get("id")
        spec = FlavorSpec(
            name=body["name"].strip(),
            id=None if flavor_id is None or flavor_id == "" else str(flavor_id),
            ram=_size(body, "ram", 1, "ram"),
            vcpus=_size(body, "vcpus", 1, "vcpus"),
            disk=_size(body, "disk", 0, "disk"),
            ephemeral=_size(body, "OS-FLV-EXT-DATA:ephemeral", 0, "ephemeral"),
            swap=_size(body, "swap", 0, "swap"),
            rxtx_factor=float(body.get("rxtx_factor", 1.0)),
            is_public=as_bool(body.get("os-flavor-access:is_public", True)),
            description=body.get("description") if v255 else None,
        )
        with self.rt.db.session() as session:
            flavor = flavors.create_flavor(session, spec)
            resp.media = {
                "flavor": flavor_view(req, flavor, {} if _shows_specs(req, self.rt) else None)
            }


class FlavorsDetail:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = _list(req, self.rt, detail=True)


class FlavorItem:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _show(self, req: falcon.Request, session: Session, flavor: Flavor) -> dict[str, Any]:
        specs = flavors.extra_specs(session, flavor.id) if _shows_specs(req, self.rt) else None
        return {"flavor": flavor_view(req, flavor, specs)}

    def on_get(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        with self.rt.db.session(readonly=True) as session:
            resp.media = self._show(req, session, _flavor(req, self.rt, session, flavor_id))

    def on_put(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        if not microversion(req).matches("2.55"):
            raise errors.NotFound("The resource could not be found.")
        authorize(req, self.rt, "os_compute_api:os-flavor-manage:update")
        description = read_body(req, UPDATE)["flavor"]["description"]
        with self.rt.db.session() as session:
            flavor = _flavor(req, self.rt, session, flavor_id)
            flavor.description = description
            session.flush()
            resp.media = self._show(req, session, flavor)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        authorize(req, self.rt, "os_compute_api:os-flavor-manage:delete")
        with self.rt.db.session() as session:
            flavors.delete_flavor(session, flavor_id)
        resp.status = falcon.HTTP_202


def _access_view(flavor_id: str, projects: list[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavor_id, "tenant_id": p} for p in projects]}


class FlavorAccessList:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        authorize(req, self.rt, "os_compute_api:os-flavor-access")
        with self.rt.db.session(readonly=True) as session:
            flavor = _flavor(req, self.rt, session, flavor_id)
            if flavor.is_public:
                raise errors.NotFound("Access list not available for public flavors.")
            resp.media = _access_view(flavor.id, flavors.access_list(session, flavor.id))


class FlavorAction:
    """POST /flavors/{id}/action: addTenantAccess and removeTenantAccess."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_post(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        body = read_body(req, ANY_ACTION)
        action = next(iter(body), None)
        if action not in ACTIONS:
            raise errors.BadRequest(f"There is no such action: {action}")
        rule = "add_tenant_access" if action == "addTenantAccess" else "remove_tenant_access"
        authorize(req, self.rt, f"os_compute_api:os-flavor-access:{rule}")
        tenant = read_body(req, ACTIONS[action])[action]["tenant"]
        if action == "addTenantAccess":
            verify_project_id(self.rt, tenant)
        with self.rt.db.session() as session:
            flavor = _flavor(req, self.rt, session, flavor_id)
            if action == "removeTenantAccess":
                flavors.remove_access(session, flavor, tenant)
            elif flavor.is_public and microversion(req).matches("2.7"):
                raise errors.Conflict("Can not add access to a public flavor.")
            else:
                flavors.add_access(session, flavor, tenant)
            resp.media = _access_view(flavor.id, flavors.access_list(session, flavor.id))


def _spec_values(specs: dict[str, Any]) -> dict[str, str]:
    """Values arrive as strings or numbers and are kept as strings of 255 at most."""
    values = {key: str(value) for key, value in specs.items()}
    for key, value in values.items():
        if len(value) > 255:
            raise errors.BadRequest(
                f"Invalid input for field/attribute {key}: extra_specs value is too long"
            )
    return values


class ExtraSpecs:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        auth = caller(req)
        authorize(
            req,
            self.rt,
            "os_compute_api:os-flavor-extra-specs:index",
            {"project_id": auth.project_id},
        )
        with self.rt.db.session(readonly=True) as session:
            flavor = _flavor(req, self.rt, session, flavor_id)
            resp.media = {"extra_specs": flavors.extra_specs(session, flavor.id)}

    def on_post(self, req: falcon.Request, resp: falcon.Response, flavor_id: str) -> None:
        authorize(req, self.rt, "os_compute_api:os-flavor-extra-specs:create")
        specs = _spec_values(read_body(req, SPECS_CREATE)["extra_specs"])
        with self.rt.db.session() as session:
            flavors.set_extra_specs(session, _flavor(req, self.rt, session, flavor_id), specs)
        resp.media = {"extra_specs": specs}


class ExtraSpec:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response, flavor_id: str, key: str) -> None:
        auth = caller(req)
        authorize(
            req,
            self.rt,
            "os_compute_api:os-flavor-extra-specs:show",
            {"project_id": auth.project_id},
        )
        with self.rt.db.session(readonly=True) as session:
            flavor = _flavor(req, self.rt, session, flavor_id)
            specs = flavors.extra_specs(session, flavor.id)
        if key not in specs:
            raise errors.NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        resp.media = {key: specs[key]}

    def on_put(self, req: falcon.Request, resp: falcon.Response, flavor_id: str, key: str) -> None:
        authorize(req, self.rt, "os_compute_api:os-flavor-extra-specs:update")
        specs = _spec_values(read_body(req, SPEC_UPDATE))
        if key not in specs:
            raise errors.BadRequest("Request body and URI mismatch")
        with self.rt.db.session() as session:
            flavors.set_extra_specs(session, _flavor(req, self.rt, session, flavor_id), specs)
        resp.media = specs

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, flavor_id: str, key: str
    ) -> None:
        authorize(req, self.rt, "os_compute_api:os-flavor-extra-specs:delete")
        with self.rt.db.session() as session:
            flavors.delete_extra_spec(session, _flavor(req, self.rt, session, flavor_id), key)


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    """`prefix` is the compute API's versioned root, /compute/v2.1."""
    item = f"{prefix}/flavors/{{flavor_id}}"
    app.add_route(f"{prefix}/flavors", Flavors(rt))
    app.add_route(f"{prefix}/flavors/detail", FlavorsDetail(rt))
    app.add_route(item, FlavorItem(rt))
    app.add_route(f"{item}/action", FlavorAction(rt))
    app.add_route(f"{item}/os-flavor-access", FlavorAccessList(rt))
    app.add_route(f"{item}/os-extra_specs", ExtraSpecs(rt))
    app.add_route(f"{item}/os-extra_specs/{{key}}", ExtraSpec(rt))
