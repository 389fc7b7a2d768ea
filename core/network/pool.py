"""The address plan: how the pool splits into subnets and which addresses a subnet hands out.

Pure arithmetic, no datastore. Block `n` of the pool is the n-th subnet of the
configured prefix length. In each subnet the first address is the network, the
second the gateway and the last the broadcast address; the rest are handed
out, starting after the one handed out last and wrapping around.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
from collections.abc import Collection, Iterable, Iterator


@dataclasses.dataclass(frozen=True)
class AddressPlan:
    pool: ipaddress.IPv4Network
    prefix: int
    mac_prefix: str

    @classmethod
    def parse(cls, pool: str, prefix: int, mac_prefix: str) -> AddressPlan:
        """Checked settings; ValueError names the setting that is wrong."""
        try:
            network = ipaddress.IPv4Network(pool)
        except ValueError as exc:
            raise ValueError(f"[network] pool {pool!r} is not an IPv4 network: {exc}") from exc
        if network.prefixlen < 8:
            raise ValueError("[network] pool must be a /8 or smaller (MACs carry 24 bits of it)")
        if not network.prefixlen <= prefix <= 29:
            raise ValueError(
                f"[network] subnet_prefix must be between the pool's /{network.prefixlen} and /29"
            )
        octets = mac_prefix.lower().split(":")
        if len(octets) != 3 or not all(len(o) == 2 and _is_hex(o) for o in octets):
            raise ValueError("[network] mac_prefix must be three hex bytes such as fa:16:3e")
        return cls(network, prefix, mac_prefix.lower())

    @property
    def blocks(self) -> int:
        return 1 << (self.prefix - self.pool.prefixlen)

    @property
    def block_size(self) -> int:
        return 1 << (32 - self.prefix)

    @property
    def capacity(self) -> int:
        """Addresses a subnet hands out: all but network, gateway and broadcast."""
        return self.block_size - 3

    def block(self, index: int) -> ipaddress.IPv4Network:
        first = int(self.pool.network_address) + index * self.block_size
        return ipaddress.IPv4Network((first, self.prefix))

    def free_block(self, taken: Collection[int]) -> int | None:
        """The lowest block no subnet uses yet, or None when the pool is exhausted."""
        taken_set = set(taken)
        for index in range(self.blocks):
            if index not in taken_set:
                return index
        return None

    def mac(self, address: str) -> str:
        """The MAC for an address: the prefix, then the address's low 24 bits.

        Unique within the pool by construction (the pool is at most a /8), and
        stable: a guest given the same address again gets the same MAC.
        """
        low = int(ipaddress.IPv4Address(address)) & 0xFFFFFF
        tail = ":".join(f"{(low >> shift) & 0xFF:02x}" for shift in (16, 8, 0))
        return f"{self.mac_prefix}:{tail}"


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def gateway(cidr: str) -> str:
    return str(ipaddress.IPv4Network(cidr).network_address + 1)


def first_offset() -> int:
    """Offsets 0 and 1 are the network address and the gateway."""
    return 2


def last_offset(cidr: str) -> int:
    return ipaddress.IPv4Network(cidr).num_addresses - 2


def address(cidr: str, offset: int) -> str:
    return str(ipaddress.IPv4Network(cidr).network_address + offset)


def offset_of(cidr: str, ip: str) -> int | None:
    """Where `ip` sits in the subnet, or None if it is not an address the subnet hands out."""
    network = ipaddress.IPv4Network(cidr)
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        return None
    if addr not in network:
        return None
    offset = int(addr) - int(network.network_address)
    return offset if first_offset() <= offset <= last_offset(cidr) else None


def offsets(cidr: str, ips: Iterable[str]) -> set[int]:
    """The offsets of those of `ips` the subnet hands out (what `offset_of` gives each),
    with the subnet parsed once: this runs over every address of a subnet."""
    network = ipaddress.IPv4Network(cidr)
    base = int(network.network_address)
    low, high = first_offset(), network.num_addresses - 2
    found = set()
    for ip in ips:
        try:
            offset = int(ipaddress.IPv4Address(ip)) - base
        except ValueError:
            continue
        if low <= offset <= high:
            found.add(offset)
    return found


def _after(cidr: str, cursor: int) -> Iterator[int]:
    """Every offset the subnet hands out, in the order they are tried after `cursor`."""
    low, high = first_offset(), last_offset(cidr)
    span = high - low + 1
    start = cursor + 1 if low <= cursor + 1 <= high else low
    return (low + (start - low + step) % span for step in range(span))


def next_free(cidr: str, cursor: int, taken: Collection[int]) -> int | None:
    """The first offset after `cursor` (wrapping) that is not taken, or None when full."""
    return next((offset for offset in _after(cidr, cursor) if offset not in taken), None)


def upcoming(cidr: str, cursor: int, count: int) -> dict[str, int]:
    """The first `count` addresses `next_free` tries after `cursor`, with their offsets."""
    base = ipaddress.IPv4Network(cidr).network_address
    return {str(base + offset): offset for offset in itertools.islice(_after(cidr, cursor), count)}
