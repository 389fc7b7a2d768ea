"""SQLAlchemy models: the datastore is the single source of truth.

Every change here needs an alembic revision in migrations/versions; a test
compares the two on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> dt.datetime:
    """Naive UTC: stored the same way on SQLite and PostgreSQL."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


# Roles with no domain are global; '' stands for "no domain" in the unique key
# because NULLs never collide in a UNIQUE constraint.
GLOBAL = ""


class Domain(Base):
    __tablename__ = "domains"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_projects_domain_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"), index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_users_domain_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password_created_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    default_project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Role(Base):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_roles_domain_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(String(64), default=GLOBAL)
    description: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class ImpliedRole(Base):
    __tablename__ = "implied_roles"
    prior_role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    implied_role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )


class RoleAssignment(Base):
    """A user's role on a project or a domain (target_type 'project' or 'domain')."""

    __tablename__ = "role_assignments"
    __table_args__ = (Index("ix_role_assignments_target", "target_type", "target_id"),)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    target_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    inherited: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=False)


class Region(Base):
    __tablename__ = "regions"
    id: Mapped[str] = mapped_column(String(255), primary_key=True, default=new_id)
    description: Mapped[str] = mapped_column(Text, default="")
    parent_region_id: Mapped[str | None] = mapped_column(ForeignKey("regions.id"), nullable=True)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class Service(Base):
    __tablename__ = "services"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class Endpoint(Base):
    __tablename__ = "endpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    interface: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(Text)
    region_id: Mapped[str | None] = mapped_column(ForeignKey("regions.id"), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class ApplicationCredential(Base):
    __tablename__ = "application_credentials"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_app_creds_user_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    unrestricted: Mapped[bool] = mapped_column(Boolean, default=False)
    role_ids: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RevocationEvent(Base):
    """A token matches an event when every non-null field matches and it was
    issued at or before `issued_before`; tokens are never stored."""

    __tablename__ = "revocation_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    domain_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    app_cred_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    issued_before: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


# --- compute core (controller, scheduler reports) ---


class Instance(Base):
    """A workload (VM, container or bare-metal node) and the state the controller keeps.

    `vm_state`/`task_state`/`power_state` follow Nova's meanings so the compute
    API can show them as they are; the launcher's reports drive them.
    """

    __tablename__ = "instances"
    # The server list's default order (a project's live instances, newest first), which
    # also serves every lookup by project.
    __table_args__ = (
        Index("ix_instances_project_deleted_created", "project_id", "deleted", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    image_id: Mapped[str] = mapped_column(String(64), default="")
    vm_type: Mapped[str] = mapped_column(String(16), default="qemu")
    mem_mb: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer, default=0)
    vm_state: Mapped[str] = mapped_column(String(32), default="building")
    task_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    node_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    node_lost: Mapped[bool] = mapped_column(Boolean, default=False)
    availability_zone: Mapped[str] = mapped_column(String(255), default="")
    start_payload: Mapped[dict] = mapped_column(JSON, default=dict)
    start_attempts: Mapped[int] = mapped_column(Integer, default=0)
    excluded_nodes: Mapped[list] = mapped_column(JSON, default=list)
    fault: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # A resize in flight: the flavor asked for until the node applied it (`new_flavor`),
    # then the flavor it had before until the owner confirms or reverts (`old_flavor`).
    # Each is {"id", "name", "ram", "vcpus", "disk", ...}; quota holds the larger one.
    new_flavor: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    old_flavor: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # A resize that moved the instance: the node it left, which keeps its stopped copy
    # until the owner confirms (the copy is deleted) or reverts (it runs again there).
    resize_source_node: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # The image a shelve kept the disk in, until an unshelve has run it again (or the
    # server is deleted): the controller then deletes the image.
    shelved_image_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    launched_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Soft delete: the row stays until the node confirms, so a late report cannot resurrect it.
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class Outbox(Base):
    """A command for the controller to send, written in the API's own transaction."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    command: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True, index=True)


class ConsoleReply(Base):
    """A node's answer to a console-output request, kept until the API request that
    waits for it reads it (or the controller finds it stale)."""

    __tablename__ = "console_replies"
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Why the node could not answer (its failure reason); NULL with an output.
    error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class QuotaUsage(Base):
    """What a project holds now, per resource; changed only with the rows it counts."""

    __tablename__ = "quota_usages"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    in_use: Mapped[int] = mapped_column(Integer, default=0)


class ComputeNode(Base):
    """The controller's record of each node, kept from the scheduler's events and STATS."""

    __tablename__ = "compute_nodes"
    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    node_type: Mapped[str] = mapped_column(String(16), default="compute")
    status: Mapped[str] = mapped_column(String(16), default="READY")
    connected: Mapped[bool] = mapped_column(Boolean, default=True)
    mem_total_mb: Mapped[int] = mapped_column(Integer, default=0)
    mem_available_mb: Mapped[int] = mapped_column(Integer, default=0)
    disk_total_mb: Mapped[int] = mapped_column(Integer, default=0)
    disk_available_mb: Mapped[int] = mapped_column(Integer, default=0)
    vcpus_total: Mapped[int] = mapped_column(Integer, default=0)
    vcpus_available: Mapped[int] = mapped_column(Integer, default=0)
    load: Mapped[float] = mapped_column(Float, default=0.0)
    # The zone its launcher is configured in ([launcher] availability_zone), from STATS.
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


# --- images ---
# Glance v2 images. Rows are deleted outright (no soft delete): a deleted
# image is simply gone, and its data is removed from the store with it.


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (Index("ix_images_owner_created", "owner", "created_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(30))
    visibility: Mapped[str] = mapped_column(String(16), index=True)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    os_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    disk_format: Mapped[str | None] = mapped_column(String(32), nullable=True)
    container_format: Mapped[str | None] = mapped_column(String(32), nullable=True)
    min_disk: Mapped[int] = mapped_column(Integer, default=0)
    min_ram: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    virtual_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(32), nullable=True)
    os_hash_algo: Mapped[str | None] = mapped_column(String(64), nullable=True)
    os_hash_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Where the store keeps the data (store-specific URI); None until uploaded.
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ImageProperty(Base):
    """An extra (non-core) image property: Glance's are free-form strings."""

    __tablename__ = "image_properties"
    image_id: Mapped[str] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ImageTag(Base):
    __tablename__ = "image_tags"
    image_id: Mapped[str] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[str] = mapped_column(String(255), primary_key=True)


class ImageTask(Base):
    """An import of an image's data, as Glance's tasks show it (GET /v2/images/{id}/tasks).
    Kept until it expires (a while after it ends) or its image is deleted."""

    __tablename__ = "image_tasks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(30))
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64))
    input: Mapped[dict] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class ImageMember(Base):
    """A project a shared image is offered to; the member accepts or rejects it."""

    __tablename__ = "image_members"
    image_id: Mapped[str] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    member: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


# --- servers (compat nova) ---
# Project networks with ciao-style address management, and what the compute API
# keeps about a server beyond the core's instance row. The network tables have
# Neutron's shape (networks, subnets, ports, IP allocations) so that the network
# API can later serve these same rows.


class Network(Base):
    __tablename__ = "networks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    # The project this network was made for automatically (one each, hence unique);
    # NULL for networks created any other way.
    default_for_project: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Subnet(Base):
    """An IPv4 subnet; `used` counts its allocations and changes only with them."""

    __tablename__ = "subnets"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer, default=4)
    cidr: Mapped[str] = mapped_column(String(43))
    gateway_ip: Mapped[str | None] = mapped_column(String(39), nullable=True)
    # Which block of the configured pool this subnet is: unique, so two transactions
    # can never carve the same block. NULL for subnets not taken from the pool.
    pool_block: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    capacity: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(Integer, default=0)
    # Offset of the address handed out last: allocation resumes after it, so a
    # released address is reused as late as possible.
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Port(Base):
    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("network_id", "mac_address", name="uq_ports_network_mac"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    mac_address: Mapped[str] = mapped_column(String(17))
    # The instance the port belongs to ("" when none), as Neutron's device_id.
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class IPAllocation(Base):
    """An address held by a port; the primary key is what makes it impossible to hand
    the same address out twice."""

    __tablename__ = "ip_allocations"
    subnet_id: Mapped[str] = mapped_column(
        ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True
    )
    ip_address: Mapped[str] = mapped_column(String(39), primary_key=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), index=True)


class ServerAttributes(Base):
    """What the compute API knows about a server that the core's instance row does not."""

    __tablename__ = "server_attributes"
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    flavor_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    # The flavor as it was at boot (name, ram, vcpus, disk, ephemeral, swap, extra_specs):
    # the server keeps it when the flavor changes or goes.
    flavor: Mapped[dict] = mapped_column(JSON, default=dict)
    key_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    key_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    reservation_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    launch_index: Mapped[int] = mapped_column(Integer, default=0)
    config_drive: Mapped[bool] = mapped_column(Boolean, default=False)
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    access_ip_v4: Mapped[str] = mapped_column(String(39), default="")
    access_ip_v6: Mapped[str] = mapped_column(String(39), default="")
    disk_config: Mapped[str] = mapped_column(String(8), default="MANUAL")
    security_groups: Mapped[list] = mapped_column(JSON, default=list)
    scheduler_hints: Mapped[dict] = mapped_column(JSON, default=dict)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_by: Mapped[str | None] = mapped_column(String(16), nullable=True)  # owner, admin
    locked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ServerMetadata(Base):
    __tablename__ = "server_metadata"
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), default="")


class ServerTag(Base):
    __tablename__ = "server_tags"
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(60), primary_key=True, index=True)


class InstanceAction(Base):
    """A request that changed a server (os-instance-actions), by whom and when."""

    __tablename__ = "instance_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(255))
    request_id: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class Migration(Base):
    """A resize or cold migration of a server (os-migrations): where it went from and to,
    the flavors, and how far it got (Nova's statuses: pre-migrating, finished,
    confirmed, reverting, reverted, error)."""

    __tablename__ = "migrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    migration_type: Mapped[str] = mapped_column(String(16))  # resize, migration
    status: Mapped[str] = mapped_column(String(16))
    source_node: Mapped[str | None] = mapped_column(String(36), nullable=True)
    source_compute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dest_node: Mapped[str | None] = mapped_column(String(36), nullable=True)
    dest_compute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    old_flavor_id: Mapped[str] = mapped_column(String(255))
    new_flavor_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class InstanceActionEvent(Base):
    """The work an action started on the node; finished once the instance settles."""

    __tablename__ = "instance_action_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("instance_actions.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(255))
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    result: Mapped[str | None] = mapped_column(String(255), nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)


# --- compute resources (compat nova) ---
# Flavors, key pairs, quota limits and server groups: what the compute API
# keeps beside the instances. Flavor ids are strings, as Nova's ("1", uuids).


class Flavor(Base):
    __tablename__ = "flavors"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    ram: Mapped[int] = mapped_column(Integer)  # MB
    vcpus: Mapped[int] = mapped_column(Integer)
    disk: Mapped[int] = mapped_column(Integer)  # GB
    ephemeral: Mapped[int] = mapped_column(Integer, default=0)  # GB
    swap: Mapped[int] = mapped_column(Integer, default=0)  # MB
    rxtx_factor: Mapped[float] = mapped_column(Float, default=1.0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class FlavorExtraSpec(Base):
    __tablename__ = "flavor_extra_specs"
    flavor_id: Mapped[str] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class FlavorAccess(Base):
    """A project allowed to see and use a private flavor."""

    __tablename__ = "flavor_access"
    flavor_id: Mapped[str] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class KeyPair(Base):
    """A user's SSH public key or X.509 certificate; names are unique per user."""

    __tablename__ = "key_pairs"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_key_pairs_user_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(8), default="ssh")
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class QuotaLimit(Base):
    """A project's (user_id '') or a project user's own limit for one resource."""

    __tablename__ = "quota_limits"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class QuotaClassLimit(Base):
    """A quota class's limit; the class `default` holds the defaults of every project."""

    __tablename__ = "quota_class_limits"
    class_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class ServerGroup(Base):
    """Instances that must share a node (affinity) or avoid each other (anti-affinity)."""

    __tablename__ = "server_groups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(32))
    rules: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ServerGroupMember(Base):
    """An instance in a group; deleted instances are skipped when members are read."""

    __tablename__ = "server_group_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("server_groups.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
