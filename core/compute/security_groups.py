"""A server's security groups: addSecurityGroup and removeSecurityGroup.

Every project has one security group, `default`, and no way to make others yet,
so a server is either in `default` (as it is created) or in no group at all.
Nova changes the groups of the server's ports through Neutron; the answers
follow from that: a server with no network interface has no port to change
(404), an unknown group is 404, removing a group the server is not in is 404,
and adding one it is already in changes nothing. Neither is an instance
action, and neither looks at the server's state or lock (Nova's compute
service is not involved).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.compute.servers import DEFAULT_SECURITY_GROUP, Servers
from ciaostack.core.db.models import Instance, Port


def _check(session: Session, instance: Instance, name: str, project_id: str) -> None:
    """404 unless `name` is a group of the caller's project and the server has a port."""
    if name != DEFAULT_SECURITY_GROUP:
        raise errors.NotFound(f"Security group {name} is not found for project {project_id}")
    port = session.scalar(select(Port.id).where(Port.device_id == instance.id).limit(1))
    if port is None:
        raise errors.NotFound(
            f"instance_id {instance.id} could not be found as device id on any ports"
        )


def add(session: Session, instance: Instance, name: str, project_id: str) -> None:
    _check(session, instance, name, project_id)
    attrs = Servers.attributes(session, instance)
    if name not in attrs.security_groups:
        # A new list: the JSON column is compared by value, not watched for mutation.
        attrs.security_groups = [*attrs.security_groups, name]


def remove(session: Session, instance: Instance, name: str, project_id: str) -> None:
    _check(session, instance, name, project_id)
    attrs = Servers.attributes(session, instance)
    if name not in attrs.security_groups:
        raise errors.NotFound(
            f"Security group {name} not associated with the instance {instance.id}"
        )
    attrs.security_groups = [group for group in attrs.security_groups if group != name]
