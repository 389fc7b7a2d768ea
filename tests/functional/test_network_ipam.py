"""Project networks and address allocation against the real datastore (SQLite, or
PostgreSQL with --db postgresql), with many threads allocating at once: no address
or MAC is ever handed out twice, subnets never overfill, and an exhausted pool is
refused cleanly."""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from ciaostack.core import errors
from ciaostack.core.db.migrate import upgrade
from ciaostack.core.db.models import IPAllocation, Network, Subnet
from ciaostack.core.db.session import Database
from ciaostack.core.network.ipam import IPAM, Interface
from ciaostack.core.network.pool import AddressPlan

# 4 blocks of /26: 61 addresses each, 244 in all.
PLAN = AddressPlan.parse("10.20.30.0/24", 26, "fa:16:3e")


@pytest.fixture
def db(database_url_factory) -> Iterator[Database]:  # noqa: ANN001
    url = database_url_factory()
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def allocate(db: Database, ipam: IPAM, project: str, device: str) -> Interface:
    with db.session() as session:
        network = ipam.project_network(session, project)
        return ipam.allocate(session, network, project, device)


def test_plan_checks_its_settings() -> None:
    assert PLAN.blocks == 4 and PLAN.capacity == 61
    assert str(PLAN.block(3)) == "10.20.30.192/26"
    assert PLAN.mac("10.20.30.2") == "fa:16:3e:14:1e:02"
    for pool, prefix, mac in (
        ("10.0.0.0/7", 24, "fa:16:3e"),
        ("10.0.0.0/24", 16, "fa:16:3e"),
        ("10.0.0.0/24", 30, "fa:16:3e"),
        ("nope", 24, "fa:16:3e"),
        ("10.0.0.0/24", 26, "fa:16"),
        ("10.0.0.0/24", 26, "fa:16:zz"),
    ):
        with pytest.raises(ValueError):
            AddressPlan.parse(pool, prefix, mac)


def test_concurrent_allocations_are_unique(db: Database) -> None:
    ipam = IPAM(PLAN, "private")
    results: list[tuple[str, Interface]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        project = f"p{index % 2}"
        try:
            for n in range(12):
                interface = allocate(db, ipam, project, f"dev-{index}-{n}")
                with lock:
                    results.append((project, interface))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(results) == 96
    ips = Counter(i.ip for _, i in results)
    assert max(ips.values()) == 1
    assert len({i.mac for _, i in results}) == 96
    # Each project's addresses lie in its own subnets, one network per project.
    for project in ("p0", "p1"):
        mine = [i for p, i in results if p == project]
        assert len({i.network_id for i in mine}) == 1
        assert all(ipaddress.ip_address(i.ip) in ipaddress.ip_network(i.cidr) for i in mine)
    cidrs = {p: {i.cidr for q, i in results if q == p} for p in ("p0", "p1")}
    assert not cidrs["p0"] & cidrs["p1"]
    with db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Network)) == 2
        for subnet in session.scalars(select(Subnet)):
            held = session.scalar(select(func.count()).where(IPAllocation.subnet_id == subnet.id))
            assert subnet.used == held <= subnet.capacity


def test_exhausted_pool_is_refused_and_released_addresses_return(db: Database) -> None:
    ipam = IPAM(PLAN, "private")
    handed = [allocate(db, ipam, "only", f"d{i}") for i in range(PLAN.blocks * PLAN.capacity)]
    assert len({i.ip for i in handed}) == 244
    with pytest.raises(errors.Conflict, match="exhausted"):
        allocate(db, ipam, "only", "one-too-many")
    with pytest.raises(errors.Conflict, match="exhausted"):
        allocate(db, ipam, "newcomer", "first")
    with db.session() as session:
        ipam.release(session, ["d0", "d70"])
    again = {allocate(db, ipam, "only", "x").ip, allocate(db, ipam, "only", "y").ip}
    assert again == {handed[0].ip, handed[70].ip}
    with db.session() as session:
        assert ipam.interfaces(session, ["x", "d1"])["d1"] == [handed[1]]


def test_fixed_addresses(db: Database) -> None:
    ipam = IPAM(PLAN, "private")
    first = allocate(db, ipam, "p", "a")
    with db.session() as session:
        network = ipam.project_network(session, "p")
        chosen = ipam.allocate(session, network, "p", "b", fixed_ip="10.20.30.40")
        assert chosen.ip == "10.20.30.40" and chosen.mac == "fa:16:3e:14:1e:28"
    for address in (first.ip, "10.20.30.40", "10.20.30.1", "10.20.30.63", "10.99.0.1"):
        with db.session() as session, pytest.raises(errors.BadRequest):
            network = ipam.project_network(session, "p")
            ipam.allocate(session, network, "p", "c", fixed_ip=address)
    # The cursor moves on: the next automatic address is not a fixed one's.
    assert allocate(db, ipam, "p", "d").ip != "10.20.30.40"


def test_a_freed_address_far_from_the_cursor_is_found(db: Database) -> None:
    """Past the addresses just after the cursor (all taken here), allocation falls back
    to reading the whole subnet and still finds the one free address."""
    ipam = IPAM(PLAN, "private")
    handed = [allocate(db, ipam, "w", f"d{i}") for i in range(PLAN.capacity)]
    with db.session() as session:
        ipam.release(session, ["d40"])
    assert allocate(db, ipam, "w", "again").ip == handed[40].ip
    # The next address comes from a new subnet: the first one is full again.
    assert allocate(db, ipam, "w", "next").cidr != handed[0].cidr


def test_an_address_taken_just_after_the_cursor_is_stepped_over(db: Database) -> None:
    """The claim moves the cursor to the next address; when a fixed address holds it,
    allocation goes on from there and the cursor follows."""
    ipam = IPAM(PLAN, "private")
    first = allocate(db, ipam, "f", "a")
    base = ipaddress.ip_address(first.ip)
    with db.session() as session:
        network = ipam.project_network(session, "f")
        ipam.allocate(session, network, "f", "b", fixed_ip=str(base + 1))
    following = [allocate(db, ipam, "f", f"c{i}").ip for i in range(2)]
    assert following == [str(base + 2), str(base + 3)]
