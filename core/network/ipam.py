"""Address management in the datastore: project networks, subnets from the pool, ports.

Concurrency: claiming an address is a conditional UPDATE of its subnet's
`used` counter (`used < capacity`), which also locks the subnet row until the
transaction ends; the address is then chosen from what the subnet holds and
inserted under a primary key on (subnet, address). So two transactions can
neither overfill a subnet nor take the same address, on SQLite (one writer at a
time) or PostgreSQL (row locks). New subnets and project networks are inserted
under unique keys (pool block, project) in a savepoint; the loser of a race
uses the winner's row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterable

from sqlalchemy import Select, Table, bindparam, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.config import Config
from ciaostack.core.db import prepared
from ciaostack.core.db.models import IPAllocation, Network, Port, Subnet
from ciaostack.core.network import pool
from ciaostack.core.network.pool import AddressPlan

# Neutron's device_owner for a server's port.
COMPUTE_OWNER = "compute:nova"
# A port's status: a port is up from its creation (no agent here reports it otherwise).
PORT_ACTIVE = "ACTIVE"
# Races lost in a row before giving up (each loss means another request progressed).
ATTEMPTS = 20
# Addresses after a subnet's cursor looked up before reading all its allocations: the
# cursor goes round the subnet, so the next address is nearly always free.
WINDOW = 16
# Every create writes these rows: Core statements on the tables skip the ORM's unit of
# work and bulk-update machinery, which cost more than the statements and have nothing
# to keep track of here (a port and its address are not used as objects afterwards).
_SUBNETS = Subnet.__table__
_PORTS = Port.__table__
_ALLOCATIONS = IPAllocation.__table__
_NETWORKS = Network.__table__
# Built once (building costs several times what running them does).
_TAKE = (
    update(_SUBNETS)
    .where(_SUBNETS.c.id == bindparam("subnet"), _SUBNETS.c.used < _SUBNETS.c.capacity)
    .values(used=_SUBNETS.c.used + 1)
    .returning(_SUBNETS.c.cursor)
)


def _roomy(subnets: Table) -> Select:
    """The id of a network's first subnet with room (in creation order)."""
    c = subnets.c
    return (
        select(c.id)
        .where(c.network_id == bindparam("network"), c.used < c.capacity)
        .order_by(c.created_at, c.id)
        .limit(1)
    )


_ROOMY = _roomy(_SUBNETS)
# The room is checked again on the row itself: under PostgreSQL's READ COMMITTED a
# concurrent claim may have filled it between the subquery and the row lock. The
# cursor moves on to the next offset at once, round to the first after the last (the
# usable offsets are pool.first_offset() to capacity + 1): that address is nearly
# always free, and then the claim is this statement and one lookup.
_TAKE_FIRST = (
    update(_SUBNETS)
    .where(
        _SUBNETS.c.id == _roomy(_SUBNETS.alias("roomy")).scalar_subquery(),
        _SUBNETS.c.used < _SUBNETS.c.capacity,
    )
    .values(
        used=_SUBNETS.c.used + 1,
        cursor=case(
            (
                or_(
                    _SUBNETS.c.cursor < pool.first_offset() - 1,
                    _SUBNETS.c.cursor >= _SUBNETS.c.capacity + 1,
                ),
                pool.first_offset(),
            ),
            else_=_SUBNETS.c.cursor + 1,
        ),
    )
    .returning(_SUBNETS.c.id, _SUBNETS.c.cidr, _SUBNETS.c.gateway_ip, _SUBNETS.c.cursor)
)
_IS_HELD = select(_ALLOCATIONS.c.ip_address).where(
    _ALLOCATIONS.c.subnet_id == bindparam("subnet"), _ALLOCATIONS.c.ip_address == bindparam("ip")
)
_MOVE_CURSOR = (
    update(_SUBNETS).where(_SUBNETS.c.id == bindparam("subnet")).values(cursor=bindparam("offset"))
)
_HELD = select(_ALLOCATIONS.c.ip_address).where(
    _ALLOCATIONS.c.subnet_id == bindparam("subnet"),
    _ALLOCATIONS.c.ip_address.in_(bindparam("ips", expanding=True)),
)
_INSERT_PORT = insert(_PORTS)
_DEFAULT_NETWORK = select(_NETWORKS.c.id, _NETWORKS.c.name).where(
    _NETWORKS.c.default_for_project == bindparam("project")
)
_INSERT_ALLOCATION = insert(_ALLOCATIONS)


@dataclasses.dataclass(frozen=True)
class NetworkRef:
    """What addressing needs of a network. A create looks up its project's network
    with one prepared statement instead of loading the ORM object (a tenth of a
    create's CPU)."""

    id: str
    name: str


@dataclasses.dataclass(frozen=True)
class Interface:
    """One of a server's addresses, as the compute API shows it and the launcher needs it."""

    port_id: str
    network_id: str
    network_name: str
    ip: str
    mac: str
    cidr: str
    gateway: str | None
    subnet_id: str
    port_status: str


class IPAM:
    def __init__(self, plan: AddressPlan, network_name: str) -> None:
        self.plan = plan
        self.network_name = network_name

    @classmethod
    def from_conf(cls, conf: Config) -> IPAM:
        plan = AddressPlan.parse(
            conf.get("network", "pool"),
            conf.get("network", "subnet_prefix"),
            conf.get("network", "mac_prefix"),
        )
        return cls(plan, conf.get("network", "project_network_name"))

    # -- networks ------------------------------------------------------------------------

    def project_network(self, session: Session, project_id: str) -> NetworkRef:
        """The project's own network, made on first use."""
        found = self.find_project_network(session, project_id)
        if found is not None:
            return found
        made = Network(
            id=str(uuid.uuid4()),
            project_id=project_id,
            name=self.network_name,
            default_for_project=project_id,
        )
        try:
            with session.begin_nested():
                session.add(made)
        except IntegrityError:  # another request made it meanwhile
            found = self.find_project_network(session, project_id)
            if found is None:
                raise
            return found
        return NetworkRef(made.id, made.name)

    @staticmethod
    def find_project_network(session: Session, project_id: str) -> NetworkRef | None:
        """The project's own network, if it has been made."""
        row = prepared.run(session, _DEFAULT_NETWORK, {"project": project_id}).first()
        return None if row is None else NetworkRef(*row)

    def network_for(
        self, session: Session, project_id: str, network_id: str, is_admin: bool = False
    ) -> NetworkRef:
        """A network the project may attach to: its own, a shared one, any for an admin."""
        network = session.get(Network, network_id)
        if network is None or not (is_admin or network.shared or network.project_id == project_id):
            raise errors.BadRequest(f"Network {network_id} could not be found.")
        return NetworkRef(network.id, network.name)

    # -- addresses -------------------------------------------------------------------------

    def allocate(
        self,
        session: Session,
        network: NetworkRef,
        project_id: str,
        device_id: str = "",
        fixed_ip: str | None = None,
    ) -> Interface:
        """A port on `network` with one address (`fixed_ip` if asked for) and its MAC."""
        if fixed_ip:
            subnet_id, cidr, gateway, offset = self._claim_fixed(session, network, fixed_ip)
        else:
            subnet_id, cidr, gateway, offset = self._claim_any(session, network, project_id)
        ip = pool.address(cidr, offset)
        port_id, mac = str(uuid.uuid4()), self.plan.mac(ip)
        prepared.run(
            session,
            _INSERT_PORT,
            {
                "id": port_id,
                "network_id": network.id,
                "project_id": project_id,
                "mac_address": mac,
                "device_id": device_id,
                "device_owner": COMPUTE_OWNER if device_id else "",
                "status": PORT_ACTIVE,
            },
        )
        prepared.run(
            session,
            _INSERT_ALLOCATION,
            {"subnet_id": subnet_id, "ip_address": ip, "port_id": port_id},
        )
        return Interface(
            port_id, network.id, network.name, ip, mac, cidr, gateway, subnet_id, PORT_ACTIVE
        )

    @staticmethod
    def _take(session: Session, subnet_id: str) -> int | None:
        """Count one more address against the subnet if it has room (this locks its row);
        the subnet's cursor then, or None when it was full."""
        return prepared.run(session, _TAKE, {"subnet": subnet_id}).scalar()

    def _claim_any(
        self, session: Session, network: NetworkRef, project_id: str
    ) -> tuple[str, str, str | None, int]:
        for _ in range(ATTEMPTS):
            # The network's first subnet with room, counted against at once (one
            # statement: this runs for every server created).
            row = prepared.run(session, _TAKE_FIRST, {"network": network.id}).first()
            if row is None:
                if prepared.run(session, _ROOMY, {"network": network.id}).first() is None:
                    self._carve(session, network, project_id)
                continue  # carved, raced for a new block, or the subnet filled meanwhile
            subnet_id, cidr, gateway, offset = row
            ip = pool.address(cidr, offset)
            if prepared.run(session, _IS_HELD, {"subnet": subnet_id, "ip": ip}).first() is None:
                return subnet_id, cidr, gateway, offset
            # Taken (by a fixed address, or after the cursor went round): the next free.
            found = self._next_free(session, subnet_id, cidr, offset)
            if found is None:
                # The counter disagrees with the allocations: believe the allocations.
                self._recount(session, subnet_id)
                continue
            prepared.run(session, _MOVE_CURSOR, {"subnet": subnet_id, "offset": found})
            return subnet_id, cidr, gateway, found
        raise errors.Conflict("Could not allocate an IP address: too much contention, try again.")

    def _claim_fixed(
        self, session: Session, network: NetworkRef, ip: str
    ) -> tuple[str, str, str | None, int]:
        for subnet_id, cidr, gateway in session.execute(
            select(Subnet.id, Subnet.cidr, Subnet.gateway_ip).where(Subnet.network_id == network.id)
        ):
            offset = pool.offset_of(cidr, ip)
            if offset is None:
                continue
            if self._take(session, subnet_id) is None or self._held(
                session, subnet_id, [pool.address(cidr, offset)]
            ):
                raise errors.BadRequest(f"Fixed IP address {ip} is already in use.")
            return subnet_id, cidr, gateway, offset
        raise errors.BadRequest(
            f"Fixed IP address {ip} is not an assignable address of network {network.id}."
        )

    def _next_free(self, session: Session, subnet_id: str, cidr: str, cursor: int) -> int | None:
        """What `pool.next_free` answers, reading the subnet's allocations only when the
        WINDOW addresses after the cursor are all taken."""
        upcoming = pool.upcoming(cidr, cursor, WINDOW)
        held = self._held(session, subnet_id, list(upcoming))
        for ip, offset in upcoming.items():
            if ip not in held:
                return offset
        return pool.next_free(cidr, cursor, self._taken(session, subnet_id, cidr))

    @staticmethod
    def _held(session: Session, subnet_id: str, ips: list[str]) -> set[str]:
        """Those of `ips` (as `pool.address` writes them) that are allocated in the subnet."""
        return set(session.scalars(_HELD, {"subnet": subnet_id, "ips": ips}))

    @staticmethod
    def _taken(session: Session, subnet_id: str, cidr: str) -> set[int]:
        ips = session.scalars(
            select(IPAllocation.ip_address).where(IPAllocation.subnet_id == subnet_id)
        )
        return pool.offsets(cidr, ips)

    @staticmethod
    def _recount(session: Session, subnet_id: str) -> None:
        count = session.scalar(select(func.count()).where(IPAllocation.subnet_id == subnet_id))
        session.execute(
            update(Subnet)
            .where(Subnet.id == subnet_id)
            .values(used=count)
            .execution_options(synchronize_session=False)
        )

    def _carve(self, session: Session, network: NetworkRef, project_id: str) -> None:
        """A new subnet for `network` from the pool's lowest free block (none when another
        transaction carved the same block first: the caller looks again)."""
        taken = session.scalars(select(Subnet.pool_block).where(Subnet.pool_block.is_not(None)))
        index = self.plan.free_block(list(taken))
        if index is None:
            raise errors.Conflict(
                f"No IP addresses are left: the address pool {self.plan.pool} is exhausted."
            )
        cidr = str(self.plan.block(index))
        subnet = Subnet(
            id=str(uuid.uuid4()),
            network_id=network.id,
            project_id=project_id,
            name=f"{network.name}-{index}",
            cidr=cidr,
            gateway_ip=pool.gateway(cidr),
            pool_block=index,
            capacity=self.plan.capacity,
            used=0,
            cursor=pool.first_offset() - 1,
        )
        with contextlib.suppress(IntegrityError), session.begin_nested():
            session.add(subnet)

    def release(self, session: Session, device_ids: Iterable[str]) -> None:
        """Free the ports (and addresses) of these devices."""
        ids = list(device_ids)
        if not ids:
            return
        port_ids = select(Port.id).where(Port.device_id.in_(ids)).scalar_subquery()
        held = session.execute(
            select(IPAllocation.subnet_id, func.count())
            .where(IPAllocation.port_id.in_(port_ids))
            .group_by(IPAllocation.subnet_id)
        ).all()
        for subnet_id, count in held:
            session.execute(
                update(Subnet)
                .where(Subnet.id == subnet_id)
                .values(used=Subnet.used - count)
                .execution_options(synchronize_session=False)
            )
        session.query(IPAllocation).filter(IPAllocation.port_id.in_(port_ids)).delete(
            synchronize_session=False
        )
        session.query(Port).filter(Port.device_id.in_(ids)).delete(synchronize_session=False)

    def interfaces(self, session: Session, device_ids: Iterable[str]) -> dict[str, list[Interface]]:
        """Each device's interfaces, in the order they were made."""
        ids = list(device_ids)
        result: dict[str, list[Interface]] = {i: [] for i in ids}
        if not ids:
            return result
        found = session.execute(
            select(
                Port.device_id,
                Port.id,
                Port.network_id,
                Network.name,
                IPAllocation.ip_address,
                Port.mac_address,
                Subnet.cidr,
                Subnet.gateway_ip,
                Subnet.id,
                Port.status,
            )
            .join(Network, Network.id == Port.network_id)
            .join(IPAllocation, IPAllocation.port_id == Port.id)
            .join(Subnet, Subnet.id == IPAllocation.subnet_id)
            .where(Port.device_id.in_(ids))
            .order_by(Port.created_at, Port.id)
        )
        for device_id, *fields in found:
            result[device_id].append(Interface(*fields))
        return result

    @staticmethod
    def devices_with_address(pattern: str) -> Select:
        """Ids of the devices holding an address that matches a regular expression."""
        return (
            select(Port.device_id)
            .join(IPAllocation, IPAllocation.port_id == Port.id)
            .where(IPAllocation.ip_address.regexp_match(pattern))
        )
