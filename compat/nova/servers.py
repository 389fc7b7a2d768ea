"""/servers: create, list (summary and detail), show, update, delete, and addresses.

A translation layer: the request is checked against its microversion's schema
and turned into a core BootRequest or ServerQuery; the core does the rest in
one unit of work; server_views renders the answer.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import ipaddress
from typing import Any

import falcon
from sqlalchemy.orm import Session

from ciaostack.compat.nova import common, server_schemas
from ciaostack.compat.nova.server_views import ServerViews, addresses, state_matches
from ciaostack.core import errors
from ciaostack.core.compute import server_query
from ciaostack.core.compute.server_query import ServerQuery, StateMatch
from ciaostack.core.compute.servers import (
    DEFAULT_SECURITY_GROUP,
    BootRequest,
    NetworkRequest,
    Servers,
    new_password,
)
from ciaostack.core.db.models import Instance
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.runtime import Runtime

RULE = "os_compute_api:servers:{}"


@dataclasses.dataclass(frozen=True)
class Compute:
    """What every server resource needs: the runtime and the core's server operations."""

    rt: Runtime
    servers: Servers

    def views(self, req: falcon.Request, auth: AuthContext) -> ServerViews:
        mv = common.microversion(req)
        target = {"project_id": auth.project_id, "user_id": auth.user_id}
        policy = self.rt.policy
        creds = auth.creds()
        return ServerViews(
            req=req,
            version=mv,
            admin_attributes=policy.check(
                "os_compute_api:os-extended-server-attributes", target, creds
            ),
            show_host_status=mv.matches("2.16")
            and policy.check(RULE.format("show:host_status"), target, creds),
            is_admin=policy.check("admin_required", target, creds),
        )

    def render(
        self,
        req: falcon.Request,
        auth: AuthContext,
        session: Session,
        instance: Instance,
        updated: bool = False,
    ) -> dict[str, Any]:
        """One server in its show (or update) view."""
        mv = common.microversion(req)
        [detail] = server_query.details(
            session,
            [instance],
            self.servers.ipam,
            tags=mv.matches("2.26"),
            groups=mv.matches("2.71"),
        )
        views = self.views(req, auth)
        return views.updated(detail) if updated else views.detail(detail, single=True)


def target_of(instance: Instance) -> dict[str, str]:
    return {"project_id": instance.project_id, "user_id": instance.user_id}


def last_segment(ref: str | int) -> str:
    """Nova accepts ids or links for flavorRef and imageRef: the id is the last segment."""
    return str(ref).rstrip("/").rsplit("/", 1)[-1]


def parse_time(value: str, name: str) -> dt.datetime:
    """An ISO 8601 time as naive UTC (how the datastore keeps times)."""
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise errors.BadRequest(f"Invalid filter field: {name}.") from exc
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when


def changes_page(
    req: falcon.Request,
) -> tuple[int, str | None, dt.datetime | None, dt.datetime | None]:
    """limit, marker, changes-since and (from 2.66) changes-before of a paged listing."""
    limit, marker = common.limit_and_marker(req)
    since = before = None
    if common.query(req, "changes-since") is not None:
        since = parse_time(common.query(req, "changes-since") or "", "changes-since")
    if common.microversion(req).matches("2.66") and common.query(req, "changes-before") is not None:
        before = parse_time(common.query(req, "changes-before") or "", "changes-before")
    return limit, marker, since, before


def _ip(value: str, version: int, field: str) -> str:
    """The address in its canonical (compressed) form, as Nova stores and shows it."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or address.version != version or getattr(address, "scope_id", None):
        raise errors.BadRequest(
            f"Invalid input for field/attribute {field}. Value: {value}. "
            f"'{value}' is not a 'ipv{version}'"
        )
    return str(address)


# -- create --------------------------------------------------------------------------------


def _networks(value: Any) -> tuple[NetworkRequest, ...] | None:
    if value is None or value == "auto" or value == []:
        return None
    if value == "none":
        return ()
    requests = []
    for item in value:
        if item.get("port"):
            raise errors.BadRequest(
                "Booting with a port is not available: this cloud has no network API yet."
            )
        network_id = item.get("uuid")
        if not network_id:
            raise errors.BadRequest("Bad networks format: network uuid is not in proper format")
        fixed_ip = item.get("fixed_ip")
        if fixed_ip is not None:
            try:
                ipaddress.IPv4Address(fixed_ip)
            except ValueError as exc:
                raise errors.BadRequest(f"Invalid fixed IP address ({fixed_ip})") from exc
        requests.append(NetworkRequest(network_id=network_id, fixed_ip=fixed_ip))
    return tuple(requests)


def _image_ref(server: dict[str, Any]) -> str:
    """The image to boot: imageRef, or a block device mapping that boots from an image."""
    mappings = server.get("block_device_mapping_v2") or []
    if server.get("block_device_mapping") or any(
        m.get("source_type") in ("volume", "snapshot") or m.get("destination_type") == "volume"
        for m in mappings
    ):
        raise errors.BadRequest(
            "Block Device Mapping is Invalid: volumes are not available "
            "(this cloud has no block storage yet)."
        )
    image = last_segment(server["imageRef"]) if server.get("imageRef") else ""
    if not image:
        boot = [m for m in mappings if m.get("source_type") == "image" and m.get("uuid")]
        image = boot[0]["uuid"] if boot else ""
    return image


def _user_data(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.BadRequest("User data needs to be valid base 64.") from exc
    return value


def _list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class ServerCollection:
    """GET /servers (id, name, links) and POST /servers."""

    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        list_servers(self.compute, req, resp, detail=False)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        rt = self.compute.rt
        auth = common.caller(req)
        common.authorize(
            req, rt, RULE.format("create"), {"project_id": auth.project_id, "user_id": auth.user_id}
        )
        mv = common.microversion(req)
        body = common.read_body(req, server_schemas.create(mv))
        request = self._boot_request(req, body)
        servers = self.compute.servers
        # The checks that only read go first, outside the write transaction (see check).
        with rt.db.write_turn():
            with rt.db.session(readonly=True) as session:
                checks = servers.check(session, auth, request)
            with rt.db.session() as session:
                booted = servers.create(session, auth, request, req.context.request_id, checks)
        resp.status = falcon.HTTP_202
        server = body["server"]
        if common.as_bool(server.get("return_reservation_id", False)):
            resp.media = {"reservation_id": booted.reservation_id}
            return
        first = booted.instances[0]
        resp.media = {
            "server": {
                "id": first.id,
                "links": common.resource_links(req, "servers", first.id),
                "OS-DCF:diskConfig": request.disk_config,
                "security_groups": [{"name": name} for name in request.security_groups],
                "adminPass": server.get("adminPass") or new_password(),
            }
        }
        resp.set_header("Location", resp.media["server"]["links"][0]["href"])

    def _boot_request(self, req: falcon.Request, body: dict[str, Any]) -> BootRequest:
        server = body["server"]
        hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
        if server.get("personality"):
            raise errors.BadRequest("Personality files are not supported; use user_data.")
        if server.get("trusted_image_certificates"):
            raise errors.BadRequest("Image certificate validation is not available.")
        min_count = int(server.get("min_count", 1))
        max_count = int(server.get("max_count", min_count))
        if min_count > max_count:
            raise errors.BadRequest("min_count must be <= max_count")
        zone, host = self._zone_and_host(req, server)
        for field, version in (("accessIPv4", 4), ("accessIPv6", 6)):
            if field in server:
                server[field] = _ip(server[field], version, field)
        config_drive = server.get("config_drive", False)
        groups = [g["name"] for g in server.get("security_groups") or []]
        return BootRequest(
            name=server["name"],
            flavor_id=last_segment(server["flavorRef"]),
            image_id=_image_ref(server),
            networks=_networks(server.get("networks")),
            key_name=server.get("key_name"),
            user_data=_user_data(server.get("user_data")),
            metadata=server.get("metadata") or {},
            security_groups=tuple(dict.fromkeys(groups)) or (DEFAULT_SECURITY_GROUP,),
            availability_zone=zone,
            config_drive=config_drive != "" and common.as_bool(config_drive),
            min_count=min_count,
            max_count=max_count,
            description=server.get("description"),
            tags=tuple(server.get("tags") or ()),
            access_ip_v4=server.get("accessIPv4", ""),
            access_ip_v6=server.get("accessIPv6", ""),
            disk_config=server.get("OS-DCF:diskConfig", "MANUAL"),
            same_host=_list(hints.get("same_host")),
            different_host=_list(hints.get("different_host")),
            group_id=hints.get("group"),
            host=host,
            hints=hints,
        )

    def _zone_and_host(
        self, req: falcon.Request, server: dict[str, Any]
    ) -> tuple[str | None, str | None]:
        """The zone, and an administrator's choice of host ("zone:host" or, at 2.74,
        host / hypervisor_hostname)."""
        rt = self.compute.rt
        zone = server.get("availability_zone")
        host = None
        if zone and ":" in zone:
            common.authorize(req, rt, RULE.format("create:forced_host"))
            zone, host, *_ = [*zone.split(":"), ""]
            zone = zone or None
            host = host or None
        requested = server.get("host") or server.get("hypervisor_hostname")
        if requested:
            common.authorize(req, rt, RULE.format("create:requested_destination"))
            if server.get("host") and server.get("hypervisor_hostname") not in (
                None,
                server["host"],
            ):
                raise errors.BadRequest("host and hypervisor_hostname name different nodes here.")
            host = requested
        return zone, host


# -- list ------------------------------------------------------------------------------------

NON_ADMIN_FILTERS = ("reservation_id", "name", "status", "image", "flavor", "ip", "changes-since")


def _all_tenants(req: falcon.Request) -> bool:
    if "all_tenants" not in req.params:
        return False
    value = common.query(req, "all_tenants") or ""
    return value == "" or common.parse_bool(value, "all_tenants")


def _status_filter(req: falcon.Request, query: ServerQuery, admin: bool) -> None:
    value = req.params.get("status")
    if value is None:
        return
    names = value if isinstance(value, list) else [value]
    matches: list[StateMatch] = []
    for name in names:
        if name.upper() == "DELETED":
            if not admin:
                raise errors.Forbidden("Only administrators may list deleted instances")
            query.deleted = True
            continue
        found = state_matches(name)
        if found is None:
            if common.microversion(req).matches("2.38"):
                raise errors.BadRequest(f"Invalid status value: {name}")
            query.matches_nothing = True
            continue
        matches += found
    if matches or not query.deleted:
        query.states = matches


def _sort(req: falcon.Request, admin: bool) -> list[tuple[str, str]]:
    def values(name: str) -> list[str]:
        raw = req.params.get(name)
        return [] if raw is None else raw if isinstance(raw, list) else [raw]

    keys, dirs = values("sort_key"), values("sort_dir")
    if len(dirs) > len(keys):
        raise errors.BadRequest("Sort direction size exceeds sort key size")
    sort = []
    for index, key in enumerate(keys):
        if key not in server_query.SORT_COLUMNS and key not in server_query.CONSTANT_SORT_KEYS:
            raise errors.BadRequest(f"Invalid input for query parameters sort_key. Value: {key}.")
        if key in server_query.ADMIN_SORT_KEYS and not admin:
            raise errors.Forbidden(f"Only administrators can sort servers by {key}")
        direction = dirs[index] if index < len(dirs) else (dirs[0] if dirs else "desc")
        if direction not in ("asc", "desc"):
            raise errors.BadRequest(
                f"Invalid input for query parameters sort_dir. Value: {direction}."
            )
        sort.append((key, direction))
    return sort


def _tags(req: falcon.Request, name: str) -> tuple[str, ...]:
    value = common.query(req, name)
    return tuple(t for t in value.split(",") if t) if value else ()


def build_query(
    compute: Compute, req: falcon.Request, auth: AuthContext, detail: bool
) -> ServerQuery:
    rt = compute.rt
    mv = common.microversion(req)
    admin = common.is_admin(req, rt)
    target = {"project_id": auth.project_id, "user_id": auth.user_id}
    every_filter = common.allowed(req, rt, RULE.format("allow_all_filters"), target)
    q = common.query
    query = ServerQuery(project_id=auth.project_id)
    if _all_tenants(req):
        common.authorize(
            req, rt, RULE.format(f"{'detail' if detail else 'index'}:get_all_tenants"), target
        )
        query.project_id = q(req, "project_id") or q(req, "tenant_id")
    limit, marker = common.limit_and_marker(req)
    query.limit, query.marker = limit, marker
    query.sort = _sort(req, admin)
    if q(req, "name") is not None:
        query.name = server_query.check_regex(q(req, "name") or "", "name")
    _status_filter(req, query, admin)
    for name, attr in (("changes-since", "changes_since"), ("changes-before", "changes_before")):
        if name == "changes-before" and not mv.matches("2.66"):
            continue
        value = q(req, name)
        if value is not None:
            setattr(query, attr, parse_time(value, name))
            if query.deleted is False:
                query.deleted = None  # Nova lists deleted servers that changed, too
    if (
        query.changes_since is not None
        and query.changes_before is not None
        and query.changes_since > query.changes_before
    ):
        raise errors.BadRequest(
            "The value of changes-since must be less than or equal to changes-before."
        )
    if q(req, "image") is not None:
        query.image_id = last_segment(q(req, "image") or "")
    if q(req, "flavor") is not None:
        query.flavor_id = last_segment(q(req, "flavor") or "")
    if q(req, "ip") is not None:
        query.ip = server_query.check_regex(q(req, "ip") or "", "ip")
    if mv.matches("2.5") and q(req, "ip6") is not None:
        query.matches_nothing = True  # no server has an IPv6 address here
    query.reservation_id = q(req, "reservation_id")
    if mv.matches("2.26"):
        query.tags = _tags(req, "tags")
        query.tags_any = _tags(req, "tags-any")
        query.not_tags = _tags(req, "not-tags")
        query.not_tags_any = _tags(req, "not-tags-any")
    if mv.matches("2.73") and q(req, "locked") is not None:
        query.locked = common.parse_bool(q(req, "locked") or "", "locked")
    if every_filter:
        query.availability_zone = q(req, "availability_zone")
        query.host = q(req, "host") or q(req, "node")
        query.user_id = q(req, "user_id")
        query.uuid = q(req, "uuid")
        query.key_name = q(req, "key_name")
        if q(req, "deleted") is not None:
            query.deleted = common.parse_bool(q(req, "deleted") or "", "deleted")
    return query


def list_servers(
    compute: Compute, req: falcon.Request, resp: falcon.Response, detail: bool
) -> None:
    rt = compute.rt
    auth = common.caller(req)
    target = {"project_id": auth.project_id, "user_id": auth.user_id}
    common.authorize(req, rt, RULE.format("detail" if detail else "index"), target)
    query = build_query(compute, req, auth, detail)
    mv = common.microversion(req)
    with rt.db.session(readonly=True) as session:
        instances = server_query.page(session, query, compute.servers.ipam)
        if detail:
            views = compute.views(req, auth)
            loaded = server_query.details(
                session, instances, compute.servers.ipam, tags=mv.matches("2.26")
            )
            servers = [views.detail(d) for d in loaded]
        else:
            views = compute.views(req, auth)
            servers = [views.summary(i) for i in instances]
    body: dict[str, Any] = {"servers": servers}
    links = common.next_links(
        req,
        "servers/detail" if detail else "servers",
        len(instances),
        query.limit,
        instances[-1].id if instances else None,
    )
    if links:
        body["servers_links"] = links
    resp.media = body


class ServerDetailCollection:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        list_servers(self.compute, req, resp, detail=True)


# -- one server -------------------------------------------------------------------------------


class Server:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        rt = self.compute.rt
        auth = common.caller(req)
        with rt.db.session(readonly=True) as session:
            instance = self.compute.servers.get(session, auth, server_id)
            common.authorize(req, rt, RULE.format("show"), target_of(instance))
            resp.media = {"server": self.compute.render(req, auth, session, instance)}

    def on_put(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        rt = self.compute.rt
        auth = common.caller(req)
        body = common.read_body(req, server_schemas.update(common.microversion(req)))
        changes: dict[str, Any] = {}
        for field, name in (
            ("name", "name"),
            ("description", "description"),
            ("accessIPv4", "access_ip_v4"),
            ("accessIPv6", "access_ip_v6"),
            ("OS-DCF:diskConfig", "disk_config"),
        ):
            if field in body["server"]:
                changes[name] = body["server"][field]
        for field, version in (("accessIPv4", 4), ("accessIPv6", 6)):
            if field in body["server"]:
                changes[f"access_ip_v{version}"] = _ip(body["server"][field], version, field)
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, RULE.format("update"), target_of(instance))
            self.compute.servers.update(session, instance, changes)
            session.flush()
            resp.media = {"server": self.compute.render(req, auth, session, instance, updated=True)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        rt = self.compute.rt
        auth = common.caller(req)
        with rt.db.session() as session:
            instance = self.compute.servers.get(session, auth, server_id, lock=True)
            common.authorize(req, rt, RULE.format("delete"), target_of(instance))
            self.compute.servers.delete(session, auth, instance, req.context.request_id)
        resp.status = falcon.HTTP_204


class ServerIps:
    """GET /servers/{id}/ips and /servers/{id}/ips/{network}: addresses by network."""

    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    def _addresses(self, req: falcon.Request, server_id: str, rule: str) -> dict[str, Any]:
        rt = self.compute.rt
        auth = common.caller(req)
        with rt.db.session(readonly=True) as session:
            instance = self.compute.servers.get(session, auth, server_id)
            common.authorize(req, rt, f"os_compute_api:ips:{rule}", target_of(instance))
            [detail] = server_query.details(session, [instance], self.compute.servers.ipam)
        return addresses(detail, extended=False)

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_id: str) -> None:
        resp.media = {"addresses": self._addresses(req, server_id, "index")}

    def on_get_network(
        self, req: falcon.Request, resp: falcon.Response, server_id: str, network: str
    ) -> None:
        found = self._addresses(req, server_id, "show")
        if network not in found:
            raise errors.NotFound("Instance is not a member of specified network")
        resp.media = {network: found[network]}


def register(app: falcon.App, compute: Compute, prefix: str) -> None:
    app.add_route(f"{prefix}/servers", ServerCollection(compute))
    app.add_route(f"{prefix}/servers/detail", ServerDetailCollection(compute))
    app.add_route(f"{prefix}/servers/{{server_id}}", Server(compute))
    ips = ServerIps(compute)
    app.add_route(f"{prefix}/servers/{{server_id}}/ips", ips)
    app.add_route(f"{prefix}/servers/{{server_id}}/ips/{{network}}", ips, suffix="network")
