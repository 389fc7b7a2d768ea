"""Instance states and which actions each allows: the one place for these rules.

The names are Nova's (vm_state, task_state, power_state) because the compute
API shows them as they are and clients wait on them.
"""

from __future__ import annotations

from ciaostack.core import errors

BUILDING = "building"
ACTIVE = "active"
STOPPED = "stopped"
ERROR = "error"
DELETED = "deleted"

# task states: an action in flight
SPAWNING = "spawning"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
DELETING = "deleting"

# power states (Nova's numbers)
NOSTATE = 0
RUNNING = 1
PAUSED = 3
SHUTDOWN = 4
CRASHED = 6

# action -> vm_states it may start from
ALLOWED: dict[str, frozenset[str]] = {
    "stop": frozenset({ACTIVE, ERROR}),
    "start": frozenset({STOPPED}),
    "reboot": frozenset({ACTIVE, STOPPED, ERROR}),
    "delete": frozenset({BUILDING, ACTIVE, STOPPED, ERROR}),
}
# actions allowed while another task is in flight
INTERRUPTIBLE_BY = {"delete": None}


def check(action: str, vm_state: str, task_state: str | None) -> None:
    """Conflict (409) when `action` can't be taken now, with Nova's wording."""
    if vm_state not in ALLOWED[action]:
        raise errors.Conflict(f"Cannot '{action}' instance while it is in vm_state {vm_state}")
    if task_state is not None and action not in INTERRUPTIBLE_BY:
        raise errors.Conflict(f"Cannot '{action}' instance while it is in task_state {task_state}")
