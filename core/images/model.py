"""What an image is to the rest of the code: attributes, rules on names, who may see it.

The compat layer renders `ImageInfo` and `MemberInfo`; nothing outside
core/images touches the image rows. Visibility here is the datastore-level
rule Glance applies before any policy check: an image another project cannot
see does not exist for it (404), whatever the policy says.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from ciaostack.core import errors
from ciaostack.core.db.models import Image, ImageMember

STATUSES = (
    "queued",
    "saving",
    "active",
    "killed",
    "deleted",
    "uploading",
    "importing",
    "pending_delete",
    "deactivated",
)
VISIBILITIES = ("public", "private", "shared", "community")
MEMBER_STATUSES = ("pending", "accepted", "rejected")

#: Attributes a client sets on create and changes by PATCH.
WRITABLE = (
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "owner",
    "tags",
)
#: Attributes only the service sets; naming them in a create or a PATCH is 403.
READ_ONLY = (
    "id",
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "direct_url",
    "self",
    "file",
    "schema",
    "stores",
)
#: Names no extra property may have: the service's own, or locations (not exposed).
RESERVED = ("location", "locations", "deleted", "deleted_at")
RESERVED_PREFIX = "os_glance"
#: Glance's default per-image limits (image_property_quota, image_tag_quota,
#: image_member_quota).
MAX_PROPERTIES = 128
MAX_TAGS = 128
MAX_MEMBERS = 128


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is asking: the image core needs the project and whether it is an admin."""

    project_id: str | None
    user_id: str
    is_admin: bool


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    id: str
    name: str | None
    owner: str | None
    status: str
    visibility: str
    protected: bool
    os_hidden: bool
    disk_format: str | None
    container_format: str | None
    min_disk: int
    min_ram: int
    size: int | None
    virtual_size: int | None
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    properties: dict[str, str]
    tags: list[str]
    has_data: bool
    #: The caller's project when it sees this shared image as a member (Glance's
    #: `member_id` policy target), else None.
    member: str | None

    def target(self) -> dict[str, Any]:
        """The flat policy target (Glance's names: project_id is the owner)."""
        return {
            "id": self.id,
            "project_id": self.owner,
            "owner": self.owner,
            "visibility": self.visibility,
            "member_id": self.member,
            "protected": self.protected,
        }


@dataclasses.dataclass(frozen=True)
class MemberInfo:
    image_id: str
    member_id: str
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: ImageMember) -> MemberInfo:
        return cls(row.image_id, row.member, row.status, row.created_at, row.updated_at)


def info(row: Image, caller: Caller, properties: dict[str, str], tags: list[str]) -> ImageInfo:
    member = None
    if row.visibility == "shared" and caller.project_id != row.owner:
        member = caller.project_id
    return ImageInfo(
        id=row.id,
        name=row.name,
        owner=row.owner,
        status=row.status,
        visibility=row.visibility,
        protected=row.protected,
        os_hidden=row.os_hidden,
        disk_format=row.disk_format,
        container_format=row.container_format,
        min_disk=row.min_disk,
        min_ram=row.min_ram,
        size=row.size,
        virtual_size=row.virtual_size,
        checksum=row.checksum,
        os_hash_algo=row.os_hash_algo,
        os_hash_value=row.os_hash_value,
        created_at=row.created_at,
        updated_at=row.updated_at,
        properties=properties,
        tags=sorted(tags),
        has_data=row.location is not None and row.status in ("active", "deactivated"),
        member=member,
    )


def check_property_name(name: str) -> None:
    """Extra property names: free-form, except the service's own."""
    if name in READ_ONLY:
        raise errors.Forbidden(f"Attribute '{name}' is read-only.")
    if name in RESERVED or name.startswith(RESERVED_PREFIX):
        raise errors.Forbidden(f"Attribute '{name}' is reserved.")
    if len(name) > 255:
        raise errors.BadRequest("Custom property should not be greater than 255 characters.")
