"""Instance states and which actions each allows: the one place for these rules.

The names are Nova's (vm_state, task_state, power_state) because the compute
API shows them as they are and clients wait on them.
"""

from __future__ import annotations

from ciaostack.core import errors

# vm states: where the instance is at rest
BUILDING = "building"
ACTIVE = "active"
STOPPED = "stopped"
PAUSED = "paused"
SUSPENDED = "suspended"
# A resize the node has applied, waiting for the owner to confirm or revert it.
RESIZED = "resized"
# Shelved: its disk kept as an image; offloaded, it holds no node until unshelved.
SHELVED = "shelved"
SHELVED_OFFLOADED = "shelved_offloaded"
ERROR = "error"
DELETED = "deleted"

# task states: an action in flight
SPAWNING = "spawning"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
PAUSING = "pausing"
UNPAUSING = "unpausing"
SUSPENDING = "suspending"
RESUMING = "resuming"
REBUILDING = "rebuilding"
RESIZE_PREP = "resize_prep"
RESIZE_REVERTING = "resize_reverting"
IMAGE_SNAPSHOT_PENDING = "image_snapshot_pending"
IMAGE_BACKUP = "image_backup"
SHELVING_IMAGE_PENDING_UPLOAD = "shelving_image_pending_upload"
SHELVING_OFFLOADING = "shelving_offloading"
UNSHELVING = "unshelving"
DELETING = "deleting"


class Power:
    """Power states (Nova's numbers), as the node last reported them."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


# action -> vm_states it may start from (Nova's rules; action names are the API's)
ALLOWED: dict[str, frozenset[str]] = {
    "stop": frozenset({ACTIVE, ERROR}),
    "start": frozenset({STOPPED}),
    # a soft reboot only from ACTIVE (core/compute/servers.py): a guest must be running
    "reboot": frozenset({ACTIVE, STOPPED, PAUSED, SUSPENDED, ERROR}),
    "delete": frozenset(
        {BUILDING, ACTIVE, STOPPED, PAUSED, SUSPENDED, RESIZED, SHELVED, SHELVED_OFFLOADED, ERROR}
    ),
    "pause": frozenset({ACTIVE}),
    "unpause": frozenset({PAUSED}),
    "suspend": frozenset({ACTIVE}),
    "resume": frozenset({SUSPENDED}),
    "rebuild": frozenset({ACTIVE, STOPPED, ERROR}),
    "resize": frozenset({ACTIVE, STOPPED}),
    "migrate": frozenset({ACTIVE, STOPPED}),
    "confirmResize": frozenset({RESIZED}),
    "revertResize": frozenset({RESIZED}),
    "createImage": frozenset({ACTIVE, STOPPED, PAUSED, SUSPENDED}),
    "createBackup": frozenset({ACTIVE, STOPPED, PAUSED, SUSPENDED}),
    "shelve": frozenset({ACTIVE, STOPPED, PAUSED, SUSPENDED}),
    "shelveOffload": frozenset({SHELVED}),
    # SHELVED lasts here only until the node has deleted its copy (the offload follows
    # the shelve at once): an unshelve waits for SHELVED_OFFLOADED.
    "unshelve": frozenset({SHELVED_OFFLOADED}),
    # Only a soft-deleted server can be restored, and deletes here are never deferred
    # (Nova's reclaim_instance_interval of 0): a restore is always refused.
    "restore": frozenset(),
}
# What os-resetState may set: an administrator's way out of a state the cloud got wrong.
RESETTABLE = {"active": ACTIVE, "error": ERROR}
# actions allowed while another task is in flight
INTERRUPTIBLE_BY = {"delete": None}

# Tasks that only their own event or failure ends. A node's STATS says what runs, not
# what was done: "stopped" during a rebuild, or "running" during a resize or snapshot,
# ends nothing, or the event that follows (which moves flavors, quota and images)
# would find no task and be ignored.
ENDED_BY_EVENT_ONLY = frozenset(
    {
        REBUILDING,
        RESIZE_PREP,
        RESIZE_REVERTING,
        IMAGE_SNAPSHOT_PENDING,
        IMAGE_BACKUP,
        SHELVING_IMAGE_PENDING_UPLOAD,
        SHELVING_OFFLOADING,
    }
)

# A command -> the tasks it is in flight for: only its event or its failure (from the
# node, or the scheduler's no_node) ends them. A failure arriving during another task
# is late or stale (a PAUSE failure while an unpause is in flight): it ends nothing.
COMMAND_TASKS: dict[str, frozenset[str]] = {
    "STOP": frozenset({POWERING_OFF}),
    "RESTART": frozenset({POWERING_ON, REBOOTING, REBOOTING_HARD}),
    "PAUSE": frozenset({PAUSING}),
    "UNPAUSE": frozenset({UNPAUSING}),
    "SUSPEND": frozenset({SUSPENDING}),
    "RESUME": frozenset({RESUMING}),
    "REBUILD": frozenset({REBUILDING}),
    "RESIZE": frozenset({RESIZE_PREP}),
    "REVERT_RESIZE": frozenset({RESIZE_REVERTING}),
    # A confirm sets no task: its failure only leaves a fault on an instance at rest.
    "CONFIRM_RESIZE": frozenset(),
    "SNAPSHOT": frozenset({IMAGE_SNAPSHOT_PENDING, IMAGE_BACKUP, SHELVING_IMAGE_PENDING_UPLOAD}),
    # A shelve offloads by deleting the node's copy; an unshelve starts it again.
    "DELETE": frozenset({SHELVING_OFFLOADING}),
    "START": frozenset({UNSHELVING}),
}


def failure_ends(command: str, task_state: str | None) -> bool:
    """Whether a failure of `command` answers the task in flight (`None`: no task, which
    only a failure of a command that sets none answers)."""
    tasks = COMMAND_TASKS[command]
    return task_state in tasks if task_state is not None else not tasks


def check(action: str, vm_state: str, task_state: str | None, instance_id: str = "") -> None:
    """Conflict (409) when `action` can't be taken now, with Nova's wording."""
    subject = f"instance {instance_id}" if instance_id else "instance"
    if vm_state not in ALLOWED[action]:
        raise errors.Conflict(f"Cannot '{action}' {subject} while it is in vm_state {vm_state}")
    if task_state is not None and action not in INTERRUPTIBLE_BY:
        raise errors.Conflict(f"Cannot '{action}' {subject} while it is in task_state {task_state}")


def at_rest(power_state: int) -> str:
    """The vm_state an instance settles in after a task that kept its power state."""
    return STOPPED if power_state == Power.SHUTDOWN else ACTIVE
