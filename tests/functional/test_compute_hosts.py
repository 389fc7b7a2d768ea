"""Hypervisors, services, availability zone detail and tenant usage over real HTTP, from
what a real scheduler, controller and (simulated) launchers report.

A cloud of its own: its controller must not take other tests' instances.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from ciaostack.core.controller import operations, states
from ciaostack.core.db.models import ComputeNode, Instance, ServerAttributes
from ciaostack.core.db.session import Database
from tests.support.cloud import Cloud, make_cloud
from tests.support.compute_api import call, conforms, fault, needs
from tests.support.core import Process, core_env, free_port, prepare, wait_until
from tests.support.identity import Member, new_member

NODES = 2
TIME = "%Y-%m-%dT%H:%M:%S.%f"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, database_url_factory) -> Iterator[Cloud]:  # noqa: ANN001
    url = database_url_factory()
    home = tmp_path_factory.mktemp("hosts")
    cloud = make_cloud(home / "api", url)
    env = core_env(home, url, free_port(), CIAOSTACK_LAUNCHER__STATE_FSYNC="false")
    prepare(env)
    procs = [
        Process("scheduler", ["scheduler"], env, home).start(),
        Process("controller", ["controller"], env, home).start(),
        Process(
            "launchers",
            [
                "launcher",
                "--simulate",
                str(NODES),
                "--state-dir",
                str(home / "nodes"),
                "--hostname",
                "hv",
            ],
            env,
            home,
        ).start(),
    ]
    db = Database(url)
    try:

        def connected() -> int:
            with db.session(readonly=True) as session:
                return session.scalar(
                    select(func.count())
                    .select_from(ComputeNode)
                    .where(ComputeNode.connected.is_(True))
                )

        wait_until(lambda: connected() == NODES, timeout=60, what="nodes connected")
        yield cloud
    finally:
        db.dispose()
        for proc in reversed(procs):
            proc.stop()
        cloud.stop()
    for proc in procs:
        assert "Traceback" not in proc.text(), proc.text()[-3000:]
    assert "Traceback" not in cloud.log_path.read_text()


@pytest.fixture(scope="module")
def admin(hosts: Cloud) -> str:
    return hosts.token()


@pytest.fixture(scope="module")
def member(hosts: Cloud, admin: str) -> Member:
    return new_member(hosts, admin)


@pytest.fixture(scope="module")
def db(hosts: Cloud) -> Iterator[Database]:
    database = Database(hosts.env["CIAOSTACK_DATABASE__URL"])
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def running(hosts: Cloud, member: Member, db: Database) -> list[str]:
    """Two ACTIVE instances of the member's project, booted with flavor m1.tiny."""
    spec = operations.InstanceSpec(
        project_id=member.project_id,
        user_id=member.user_id,
        name="vm",
        image_id="img",
        mem_mb=512,
        vcpus=1,
        disk_gb=1,
    )
    with db.session() as session:
        created = operations.create_instances(session, spec, count=2)
        ids = [i.id for i in created]
        for instance_id in ids:
            session.add(
                ServerAttributes(
                    instance_id=instance_id,
                    flavor_id="1",
                    flavor={"name": "m1.tiny", "ephemeral": 0},
                )
            )

    def active() -> bool:
        with db.session(readonly=True) as session:
            rows = session.scalars(select(Instance).where(Instance.id.in_(ids))).all()
            return all(r.vm_state == states.ACTIVE and r.node_uuid for r in rows)

    wait_until(active, timeout=30, what="instances ACTIVE")
    return ids


def test_hypervisors_at_2_1(hosts: Cloud, admin: str, running: list[str]) -> None:
    listed = conforms(
        call(hosts, "GET", "/os-hypervisors", admin),
        "2.1",
        "hypervisors",
        "list_search_hypervisors",
    )
    hypervisors = listed["hypervisors"]
    assert len(hypervisors) == NODES and all(isinstance(h["id"], int) for h in hypervisors)
    assert {h["hypervisor_hostname"] for h in hypervisors} == {"hv-00000", "hv-00001"}
    assert {(h["state"], h["status"]) for h in hypervisors} == {("up", "enabled")}
    detail = call(hosts, "GET", "/os-hypervisors/detail", admin)
    nodes = conforms(detail, "2.1", "hypervisors", "list_hypervisors_detail")["hypervisors"]
    assert sum(n["running_vms"] for n in nodes) == len(running)
    for node in nodes:
        assert node["vcpus"] == 16 and node["memory_mb"] == 16384 and node["local_gb"] == 200
        assert node["cpu_info"] == "{}" and node["service"]["host"] == node["hypervisor_hostname"]
    first = hypervisors[0]
    shown = call(hosts, "GET", f"/os-hypervisors/{first['id']}", admin)
    body = conforms(shown, "2.1", "hypervisors", "get_hypervisor")["hypervisor"]
    assert body["hypervisor_hostname"] == first["hypervisor_hostname"]
    stats = call(hosts, "GET", "/os-hypervisors/statistics", admin)
    totals = conforms(stats, "2.1", "hypervisors", "get_hypervisor_statistics")[
        "hypervisor_statistics"
    ]
    assert totals["count"] == NODES and totals["vcpus"] == 16 * NODES
    assert totals["running_vms"] == len(running)
    assert "could not be found" in fault(call(hosts, "GET", "/os-hypervisors/12345", admin), 404)
    fault(call(hosts, "GET", "/os-hypervisors/not-a-number", admin), 404)
    fault(call(hosts, "GET", f"/os-hypervisors/{first['id']}/uptime", admin), 501)

    found = call(hosts, "GET", "/os-hypervisors/00001/search", admin)
    assert [
        h["hypervisor_hostname"]
        for h in conforms(found, "2.1", "hypervisors", "list_search_hypervisors")["hypervisors"]
    ] == ["hv-00001"]
    fault(call(hosts, "GET", "/os-hypervisors/nowhere/search", admin), 404)
    with_servers = call(hosts, "GET", "/os-hypervisors/hv/servers", admin)
    listed = conforms(with_servers, "2.1", "hypervisors", "get_hypervisors_servers")["hypervisors"]
    assert sorted(s["uuid"] for h in listed for s in h.get("servers", [])) == sorted(running)


def test_hypervisors_are_for_admins(hosts: Cloud, member: Member) -> None:
    token = member.token(hosts)
    for path in (
        "/os-hypervisors",
        "/os-hypervisors/detail",
        "/os-hypervisors/statistics",
        "/os-services",
        "/os-availability-zone/detail",
    ):
        fault(call(hosts, "GET", path, token), 403)


def test_hypervisors_paged_from_2_33(hosts: Cloud, admin: str) -> None:
    needs(hosts, "2.33")
    page = call(hosts, "GET", "/os-hypervisors", admin, "2.33", params={"limit": 1})
    body = conforms(page, "2.33", "hypervisors", "list_search_hypervisors")
    [first] = body["hypervisors"]
    [link] = body["hypervisors_links"]
    assert f"marker={first['id']}" in link["href"]
    rest = call(
        hosts, "GET", "/os-hypervisors/detail", admin, "2.33", params={"marker": first["id"]}
    )
    [second] = conforms(rest, "2.33", "hypervisors", "list_hypervisors_detail")["hypervisors"]
    assert second["id"] != first["id"] and isinstance(second["cpu_info"], dict)
    fault(call(hosts, "GET", "/os-hypervisors", admin, "2.33", params={"marker": "999"}), 400)


def test_hypervisors_by_uuid_from_2_53(hosts: Cloud, admin: str, running: list[str]) -> None:
    needs(hosts, "2.53")
    listed = call(hosts, "GET", "/os-hypervisors", admin, "2.53", params={"with_servers": "true"})
    hypervisors = conforms(listed, "2.53", "hypervisors", "list_search_hypervisors")["hypervisors"]
    assert all(str(uuid.UUID(h["id"])) == h["id"] for h in hypervisors)
    assert sorted(s["uuid"] for h in hypervisors for s in h.get("servers", [])) == sorted(running)
    detail = call(
        hosts,
        "GET",
        "/os-hypervisors/detail",
        admin,
        "2.53",
        params={"hypervisor_hostname_pattern": "00000"},
    )
    [node] = conforms(detail, "2.53", "hypervisors", "list_hypervisors_detail")["hypervisors"]
    assert node["hypervisor_hostname"] == "hv-00000"
    shown = call(
        hosts, "GET", f"/os-hypervisors/{node['id']}", admin, "2.53", params={"with_servers": "1"}
    )
    conforms(shown, "2.53", "hypervisors", "get_hypervisor")
    assert "Invalid uuid" in fault(call(hosts, "GET", "/os-hypervisors/1", admin, "2.53"), 400)
    fault(call(hosts, "GET", f"/os-hypervisors/{uuid.uuid4()}", admin, "2.53"), 404)
    paged_search = {"hypervisor_hostname_pattern": "hv", "limit": 1}
    fault(call(hosts, "GET", "/os-hypervisors", admin, "2.53", params=paged_search), 400)
    fault(
        call(
            hosts,
            "GET",
            "/os-hypervisors",
            admin,
            "2.53",
            params={"hypervisor_hostname_pattern": "zz"},
        ),
        404,
    )
    fault(call(hosts, "GET", "/os-hypervisors/hv/search", admin, "2.53"), 404)
    # From 2.53 the lists take only the parameters they know.
    fault(call(hosts, "GET", "/os-hypervisors", admin, "2.53", params={"colour": "blue"}), 400)
    assert call(hosts, "GET", "/os-hypervisors", admin, "2.52", params={"colour": "blue"}).ok


def test_services_and_zones(hosts: Cloud, admin: str) -> None:
    listed = conforms(
        call(hosts, "GET", "/os-services", admin), "2.1", "services", "list_services"
    )["services"]
    computes = [s for s in listed if s["binary"] == "nova-compute"]
    assert {s["host"] for s in computes} == {"hv-00000", "hv-00001"}
    assert {(s["zone"], s["state"], s["status"]) for s in computes} == {("nova", "up", "enabled")}
    assert {s["binary"] for s in listed} == {"nova-compute", "nova-scheduler", "nova-conductor"}
    assert all(s["zone"] == "internal" for s in listed if s["binary"] != "nova-compute")
    by_host = call(hosts, "GET", "/os-services", admin, params={"host": "hv-00001"}).json()[
        "services"
    ]
    assert [s["host"] for s in by_host] == ["hv-00001"]
    by_binary = call(
        hosts, "GET", "/os-services", admin, params={"binary": "nova-scheduler"}
    ).json()
    assert [s["binary"] for s in by_binary["services"]] == ["nova-scheduler"]
    assert call(hosts, "GET", "/os-services", admin, params={"binary": "nova-nothing"}).json() == {
        "services": []
    }
    zones = call(hosts, "GET", "/os-availability-zone/detail", admin)
    info = conforms(zones, "2.1", "availability_zone", "list_availability_zone_list_detail")[
        "availabilityZoneInfo"
    ]
    nova = next(z for z in info if z["zoneName"] == "nova")
    assert set(nova["hosts"]) == {"hv-00000", "hv-00001"}
    assert nova["hosts"]["hv-00000"]["nova-compute"]["available"] is True
    needs(hosts, "2.53")
    services = call(hosts, "GET", "/os-services", admin, "2.53")
    for service in conforms(services, "2.53", "services", "list_services")["services"]:
        assert str(uuid.UUID(service["id"])) == service["id"] and service["forced_down"] is False


def test_a_disconnected_node_is_down(hosts: Cloud, admin: str, db: Database) -> None:
    """The controller's record decides: a node it marked disconnected shows down."""
    ghost = str(uuid.uuid4())
    with db.session() as session:
        session.add(
            ComputeNode(uuid=ghost, hostname="ghost", connected=False, status="MAINTENANCE")
        )
    try:
        services = call(hosts, "GET", "/os-services", admin, params={"host": "ghost"}).json()[
            "services"
        ]
        assert [(s["state"], s["status"], s["disabled_reason"]) for s in services] == [
            ("down", "disabled", "maintenance")
        ]
        found = call(hosts, "GET", "/os-hypervisors/ghost/search", admin).json()["hypervisors"]
        assert [(h["state"], h["status"]) for h in found] == [("down", "disabled")]
    finally:
        with db.session() as session:
            session.delete(session.get(ComputeNode, ghost))


def test_tenant_usage(
    hosts: Cloud, admin: str, member: Member, running: list[str], db: Database
) -> None:
    with db.session() as session:
        operations.delete_instance(session, session.get(Instance, running[1]))
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime(TIME)
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime(TIME)
    params = {"start": start, "end": end}
    token = member.token(hosts)
    own = call(hosts, "GET", f"/os-simple-tenant-usage/{member.project_id}", token, params=params)
    usage = conforms(own, "2.1", "tenant_usages", "get_tenant_usage")["tenant_usage"]
    assert len(usage) == 8 and usage["tenant_id"] == member.project_id
    servers = {s["instance_id"]: s for s in usage["server_usages"]}
    assert set(servers) == set(running)
    assert servers[running[0]]["state"] == "active" and servers[running[0]]["ended_at"] is None
    assert servers[running[1]]["state"] == "terminated"
    assert servers[running[0]]["flavor"] == "m1.tiny" and servers[running[0]]["memory_mb"] == 512
    assert usage["total_hours"] > 0 and usage["total_vcpus_usage"] == pytest.approx(
        usage["total_hours"]
    )

    everyone = call(
        hosts, "GET", "/os-simple-tenant-usage", admin, params={**params, "detailed": "1"}
    )
    [summary] = conforms(everyone, "2.1", "tenant_usages", "list_tenant_usage")["tenant_usages"]
    assert len(summary) == 8
    brief = call(hosts, "GET", "/os-simple-tenant-usage", admin, params=params).json()[
        "tenant_usages"
    ]
    assert "server_usages" not in brief[0]
    fault(call(hosts, "GET", "/os-simple-tenant-usage", token, params=params), 403)
    stranger = new_member(hosts, admin).token(hosts)
    fault(
        call(hosts, "GET", f"/os-simple-tenant-usage/{member.project_id}", stranger, params=params),
        403,
    )
    backwards = {"start": end, "end": start}
    fault(
        call(hosts, "GET", f"/os-simple-tenant-usage/{member.project_id}", admin, params=backwards),
        400,
    )
    fault(
        call(
            hosts,
            "GET",
            f"/os-simple-tenant-usage/{member.project_id}",
            admin,
            params={"start": "yesterday"},
        ),
        400,
    )
    # An empty tenant id is a missing resource, not the list.
    fault(call(hosts, "GET", "/os-simple-tenant-usage/", admin, params=params), 404)
    # A period before anything ran is empty.
    before = {"start": "2001-01-01T00:00:00", "end": "2001-01-02T00:00:00"}
    assert call(
        hosts, "GET", f"/os-simple-tenant-usage/{member.project_id}", admin, params=before
    ).json() == {"tenant_usage": {}}

    needs(hosts, "2.40")
    page = call(
        hosts,
        "GET",
        f"/os-simple-tenant-usage/{member.project_id}",
        admin,
        "2.40",
        params={**params, "limit": 1},
    ).json()
    [first] = page["tenant_usage"]["server_usages"]
    [link] = page["tenant_usage_links"]
    assert f"marker={first['instance_id']}" in link["href"]
    rest = call(
        hosts,
        "GET",
        f"/os-simple-tenant-usage/{member.project_id}",
        admin,
        "2.40",
        params={**params, "marker": first["instance_id"]},
    ).json()
    assert [s["instance_id"] for s in rest["tenant_usage"]["server_usages"]] != [
        first["instance_id"]
    ]
