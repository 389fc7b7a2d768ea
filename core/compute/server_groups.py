"""Server groups: instances placed together (affinity) or apart (anti-affinity).

A server create naming a group (the `group` scheduler hint) turns it into the
scheduler's hard constraints with placement_constraints() and joins it with
add_member(), in the create's own transaction. The soft policies are
preferences Nova never fails a boot for; the scheduler has no preferences, so
they constrain nothing. Members whose instance is deleted are ignored, so a
delete needs no clean-up here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ciaostack.core import errors, quota
from ciaostack.core.compute import quotas
from ciaostack.core.controller import states
from ciaostack.core.db.models import Instance, ServerGroup, ServerGroupMember

AFFINITY = "affinity"
ANTI_AFFINITY = "anti-affinity"
SOFT_AFFINITY = "soft-affinity"
SOFT_ANTI_AFFINITY = "soft-anti-affinity"
POLICIES = (AFFINITY, ANTI_AFFINITY, SOFT_AFFINITY, SOFT_ANTI_AFFINITY)


class ServerGroupLimitExceeded(errors.Forbidden):
    def __init__(self) -> None:
        super().__init__("Quota exceeded, too many server groups.")


class GroupMemberLimitExceeded(errors.Forbidden):
    def __init__(self) -> None:
        super().__init__("Quota exceeded, too many servers in group")


def create(
    session: Session,
    project_id: str,
    user_id: str,
    name: str,
    policy: str,
    rules: Mapping[str, Any],
    limit: int,
) -> ServerGroup:
    """A new group counted against the project's server_groups quota (Forbidden when full).

    Only anti-affinity takes rules; a max_server_per_host above 1 is refused (409,
    as Nova answers when its computes cannot honour it): the scheduler places by
    node lists, not by counts per node.
    """
    if policy not in POLICIES:
        raise errors.BadRequest(f"Invalid server group policy {policy}.")
    if rules and policy != ANTI_AFFINITY:
        raise errors.BadRequest("Only anti-affinity policy supports rules.")
    if int(rules.get("max_server_per_host", 1)) > 1:
        raise errors.Conflict(
            "Creating an anti-affinity group with rule max_server_per_host > 1 is not yet "
            "supported."
        )
    try:
        quota.reserve(session, project_id, {"server_groups": 1}, {"server_groups": limit})
    except quota.QuotaExceeded as exc:
        raise ServerGroupLimitExceeded() from exc
    group = ServerGroup(
        id=str(uuid.uuid4()),
        name=name,
        project_id=project_id,
        user_id=user_id,
        policy=policy,
        rules=dict(rules),
    )
    session.add(group)
    session.flush()
    return group


def get(session: Session, group_id: str) -> ServerGroup:
    group = session.get(ServerGroup, group_id)
    if group is None:
        raise errors.NotFound(f"Instance group {group_id} could not be found.")
    return group


def list_groups(
    session: Session,
    project_id: str | None,
    offset: int = 0,
    limit: int | None = None,
) -> list[ServerGroup]:
    """A project's groups (every project's with None), oldest first."""
    stmt = select(ServerGroup)
    if project_id is not None:
        stmt = stmt.where(ServerGroup.project_id == project_id)
    stmt = stmt.order_by(ServerGroup.created_at, ServerGroup.id).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def delete(session: Session, group: ServerGroup) -> None:
    session.delete(group)  # members go with it (ON DELETE CASCADE)
    quota.release(session, group.project_id, {"server_groups": 1})
    session.flush()


def _live_members(group_ids: list[str]) -> Select[tuple[str, str]]:
    return (
        select(ServerGroupMember.group_id, ServerGroupMember.instance_id)
        .join(Instance, Instance.id == ServerGroupMember.instance_id)
        .where(ServerGroupMember.group_id.in_(group_ids), Instance.deleted.is_(False))
        .order_by(Instance.created_at, Instance.id)
    )


def members_of(session: Session, groups: list[ServerGroup]) -> dict[str, list[str]]:
    """The ids of each group's instances that are not deleted, in one query."""
    members: dict[str, list[str]] = {group.id: [] for group in groups}
    if groups:
        for group_id, instance_id in session.execute(_live_members(list(members))):
            members[group_id].append(instance_id)
    return members


def members(session: Session, group: ServerGroup) -> list[str]:
    return members_of(session, [group])[group.id]


# -- what a server create uses -------------------------------------------------------------


def group_for_hint(session: Session, group_id: str, project_id: str) -> ServerGroup:
    """The group a `group` hint names; BadRequest (Nova's 400) when it is not the
    project's, so another project's group is as good as missing. The row is locked
    until the create commits, so that concurrent creates into one group see each
    other's members."""
    group = session.scalar(
        select(ServerGroup)
        .where(ServerGroup.id == group_id, ServerGroup.project_id == project_id)
        .with_for_update()
    )
    if group is None:
        raise errors.BadRequest(f"Instance group {group_id} could not be found.")
    return group


# Members that run on no node, and so constrain no placement: in error, or shelved off it.
NOWHERE = (states.ERROR, states.SHELVED_OFFLOADED)


def placement_constraints(session: Session, group: ServerGroup) -> tuple[list[str], list[str]]:
    """(same_node_as, different_node_from) for the scheduler's Requirements.

    Affinity joins the group's live members, anti-affinity avoids them; members in
    ERROR or shelved off their node run nowhere and constrain nothing.
    """
    if group.policy not in (AFFINITY, ANTI_AFFINITY):
        return [], []
    placed = list(
        session.scalars(
            select(Instance.id)
            .join(ServerGroupMember, ServerGroupMember.instance_id == Instance.id)
            .where(
                ServerGroupMember.group_id == group.id,
                Instance.deleted.is_(False),
                Instance.vm_state.not_in(NOWHERE),
            )
            .order_by(Instance.created_at, Instance.id)
        )
    )
    return (placed, []) if group.policy == AFFINITY else ([], placed)


def move_constraints(
    session: Session, instance: Instance, same: list[str], different: list[str]
) -> tuple[list[str], list[str]]:
    """(same_node_as, different_node_from) for a server moving to another node: its
    group's members as they are now (the boot's lists miss those that joined since),
    and the instances its boot's lists named that still run."""
    group = session.scalar(
        select(ServerGroup)
        .join(ServerGroupMember, ServerGroupMember.group_id == ServerGroup.id)
        .where(ServerGroupMember.instance_id == instance.id)
    )
    join, avoid = placement_constraints(session, group) if group is not None else ([], [])
    named = [*same, *different]
    running = set(
        session.scalars(
            select(Instance.id).where(
                Instance.id.in_(named),
                Instance.deleted.is_(False),
                Instance.vm_state.not_in(NOWHERE),
            )
        )
        if named
        else ()
    )

    def others(ids: list[str]) -> list[str]:
        return [i for i in dict.fromkeys(ids) if i != instance.id]

    return (
        others([*join, *(i for i in same if i in running)]),
        others([*avoid, *(i for i in different if i in running)]),
    )


def add_member(session: Session, group: ServerGroup, instance_id: str) -> None:
    """Join a new instance to the group, within the project's server_group_members
    quota (Forbidden when full). Call with a group from group_for_hint() so that
    concurrent creates cannot both take the last place."""
    limit = quotas.limits_for(session, group.project_id)["server_group_members"]
    if limit != quotas.UNLIMITED:
        count = session.scalar(
            select(func.count())
            .select_from(ServerGroupMember)
            .join(Instance, Instance.id == ServerGroupMember.instance_id)
            .where(ServerGroupMember.group_id == group.id, Instance.deleted.is_(False))
        )
        if (count or 0) + 1 > limit:
            raise GroupMemberLimitExceeded()
    session.add(ServerGroupMember(group_id=group.id, instance_id=instance_id))
    session.flush()


def constraints_now(session: Session, instance: Instance) -> tuple[list[str], list[str]]:
    """The server group and hint rules a server that moves (or is unshelved) must keep,
    as they are now: (same node as, different node from)."""
    required = (instance.start_payload or {}).get("requirements", {})
    return move_constraints(
        session,
        instance,
        list(required.get("same_node_as", [])),
        list(required.get("different_node_from", [])),
    )
