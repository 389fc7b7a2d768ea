"""Image records: create, show, list, update, delete, tags and (de)activation.

Each call is one unit of work. Permission checks run inside it through the
`authorize(rule, image)` callable the caller passes (the compat layer's
policy check), after the visibility check and before any change, so that what
is checked is what is changed.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.config import Config
from ciaostack.core.db.models import (
    Image,
    ImageMember,
    ImageProperty,
    ImageTag,
    ImageTask,
    utcnow,
)
from ciaostack.core.db.session import Database
from ciaostack.core.images import query as listing
from ciaostack.core.images import tasks as image_tasks
from ciaostack.core.images.model import (
    MAX_PROPERTIES,
    MAX_TAGS,
    VISIBILITIES,
    WRITABLE,
    Caller,
    ImageInfo,
    check_property_name,
    info,
)
from ciaostack.core.images.store import Store

# min_ram and min_disk are 32-bit columns in Glance; larger values are refused as there.
MAX_INT32 = 2**31 - 1

Authorize = Callable[[str, ImageInfo], None]
UNLIMITED = -1


def split_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclasses.dataclass(frozen=True)
class Limits:
    max_image_size: int
    quota_images: int
    quota_total_size: int
    disk_formats: tuple[str, ...]
    container_formats: tuple[str, ...]

    @classmethod
    def from_conf(cls, conf: Config) -> Limits:
        return cls(
            max_image_size=conf.get("image", "max_image_size"),
            quota_images=conf.get("image", "quota_images"),
            quota_total_size=conf.get("image", "quota_total_size"),
            disk_formats=split_list(conf.get("image", "disk_formats")),
            container_formats=split_list(conf.get("image", "container_formats")),
        )


@dataclasses.dataclass(frozen=True)
class Change:
    """One JSON-patch operation on a top-level attribute or extra property.

    `strict_add` is the v2.0 patch media type's rule: `add` of something that
    exists is a conflict (v2.1's `add` replaces it).
    """

    op: str  # add, replace, remove
    name: str
    value: Any = None
    strict_add: bool = False


class Images:
    def __init__(self, db: Database, store: Store, limits: Limits) -> None:
        self.db = db
        self.store = store
        self.limits = limits

    # -- reading -----------------------------------------------------------------

    def load(self, session: Session, caller: Caller, image_id: str, lock: bool = False) -> Image:
        """The row, if the caller may see it; 404 otherwise (never 403)."""
        stmt = select(Image).where(Image.id == image_id, listing.visible_to(caller))
        row = session.scalar(stmt.with_for_update() if lock else stmt)
        if row is None:
            raise errors.NotFound(f"No image found with ID {image_id}")
        return row

    def describe(self, session: Session, caller: Caller, row: Image) -> ImageInfo:
        [result] = self._describe_many(session, caller, [row])
        return result

    def _describe_many(
        self, session: Session, caller: Caller, rows: list[Image]
    ) -> list[ImageInfo]:
        ids = [row.id for row in rows]
        props: dict[str, dict[str, str]] = {i: {} for i in ids}
        tags: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            for prop in session.scalars(
                select(ImageProperty).where(ImageProperty.image_id.in_(ids))
            ):
                props[prop.image_id][prop.name] = prop.value
            for tag in session.scalars(select(ImageTag).where(ImageTag.image_id.in_(ids))):
                tags[tag.image_id].append(tag.value)
        return [info(row, caller, props[row.id], tags[row.id]) for row in rows]

    def get(self, caller: Caller, image_id: str, authorize: Authorize) -> ImageInfo:
        with self.db.session(readonly=True) as session:
            result = self.describe(session, caller, self.load(session, caller, image_id))
        authorize("get_image", result)
        return result

    def tasks(self, caller: Caller, image_id: str, authorize: Authorize) -> list[ImageTask]:
        """The image's import tasks; 404 for an image the caller may not read, as Glance."""
        with self.db.session(readonly=True) as session:
            image = self.describe(session, caller, self.load(session, caller, image_id))
            try:
                authorize("get_image", image)
            except errors.Forbidden as exc:
                raise errors.NotFound(f"No image found with ID {image_id}") from exc
            return image_tasks.for_image(session, image_id)

    def list(
        self, caller: Caller, query: listing.ListQuery, may_see: Callable[[ImageInfo], bool]
    ) -> tuple[list[ImageInfo], bool]:
        """A page of images the caller sees (and `may_see` allows), and whether more follow."""
        with self.db.session(readonly=True) as session:
            rows = list(session.scalars(listing.build(session, caller, query)))
            more = len(rows) > query.limit
            page = self._describe_many(session, caller, rows[: query.limit])
        return [image for image in page if may_see(image)], more

    # -- creating and changing ------------------------------------------------------

    def create(
        self,
        caller: Caller,
        values: dict[str, Any],
        properties: dict[str, str],
        tags: list[str],
        authorize: Authorize,
    ) -> ImageInfo:
        """`values`: core attributes (WRITABLE, and optionally `id`); the rest are properties.

        A property given as null (kernel_id and ramdisk_id may be) is not set at all.
        """
        properties = {k: v for k, v in properties.items() if v is not None}
        for name in properties:
            check_property_name(name)
        if len(properties) > MAX_PROPERTIES:
            raise errors.OverLimit(f"Maximum number of image properties is {MAX_PROPERTIES}.")
        tags = list(dict.fromkeys(tags))
        if len(tags) > MAX_TAGS:
            raise errors.OverLimit(f"Maximum number of image tags is {MAX_TAGS}.")
        now = utcnow()
        row = Image(
            id=values.get("id") or str(uuid.uuid4()),
            status="queued",
            owner=values.get("owner", caller.project_id),
            visibility="shared",
            protected=False,
            os_hidden=False,
            min_disk=0,
            min_ram=0,
            created_at=now,
            updated_at=now,
        )
        for name, value in values.items():
            if name not in ("id", "owner", "tags"):
                self._set(row, name, value)
        proposed = info(row, caller, properties, tags)
        authorize("add_image", proposed)
        self._authorize_visibility(row.visibility, proposed, authorize)
        with self.db.session() as session:
            if session.get(Image, row.id) is not None:
                raise errors.Conflict(f"Image with identifier {row.id} already exists!")
            self.check_count_quota(session, row.owner)
            session.add(row)
            session.flush()
            session.add_all(
                ImageProperty(image_id=row.id, name=k, value=v) for k, v in properties.items()
            )
            session.add_all(ImageTag(image_id=row.id, value=t) for t in tags)
            session.flush()
            return self.describe(session, caller, row)

    def check_count_quota(self, session: Session, owner: str | None) -> None:
        """413 when `owner` has as many images as the quota allows (new snapshots too)."""
        quota = self.limits.quota_images
        if quota == UNLIMITED or owner is None:
            return
        count = session.scalar(select(func.count()).select_from(Image).where(Image.owner == owner))
        if count >= quota:
            raise errors.OverLimit(
                f"The project's image quota ({quota}) is used up: delete an image first."
            )

    def _set(self, row: Image, name: str, value: Any) -> None:
        """Set one core attribute, enforcing what the schema cannot express."""
        if name == "visibility" and value not in VISIBILITIES:
            raise errors.BadRequest(f"Invalid visibility value: {value}")
        if name in ("disk_format", "container_format"):
            allowed = getattr(self.limits, f"{name}s")
            if value is not None and value not in allowed:
                raise errors.BadRequest(
                    f"Invalid value '{value}' for {name}: expected one of {', '.join(allowed)}."
                )
            if getattr(row, name, None) is not None and row.status not in ("queued", "importing"):
                raise errors.Forbidden(f"Attribute {name} can be only replaced for a queued image.")
        if name in ("min_disk", "min_ram") and value < 0:
            raise errors.BadRequest(
                f"Invalid value '{value}' for parameter '{name}': cannot be negative."
            )
        if name in ("min_disk", "min_ram") and value > MAX_INT32:
            raise errors.BadRequest(f"Value {value} out of range, must not exceed {MAX_INT32}.")
        setattr(row, name, value)

    @staticmethod
    def _authorize_visibility(visibility: str, image: ImageInfo, authorize: Authorize) -> None:
        if visibility == "public":
            authorize("publicize_image", image)
        elif visibility == "community":
            authorize("communitize_image", image)

    def update(
        self, caller: Caller, image_id: str, changes: list[Change], authorize: Authorize
    ) -> ImageInfo:
        with self.db.session() as session:
            row = self.load(session, caller, image_id, lock=True)
            current = self.describe(session, caller, row)
            authorize("modify_image", current)
            props = dict(current.properties)
            tags = list(current.tags)
            for change in changes:
                if change.name == "tags":
                    if change.op == "remove":
                        raise errors.Forbidden("Property tags may not be removed.")
                    tags = list(dict.fromkeys(change.value))
                elif change.name in WRITABLE:
                    self._change_attribute(row, change, current, caller, authorize)
                else:
                    self._change_property(props, change)
            if len(props) > MAX_PROPERTIES:
                raise errors.OverLimit(f"Maximum number of image properties is {MAX_PROPERTIES}.")
            if len(tags) > MAX_TAGS:
                raise errors.OverLimit(f"Maximum number of image tags is {MAX_TAGS}.")
            if changes:
                self._replace_children(session, row.id, props, tags)
                row.updated_at = utcnow()
            session.flush()
            return self.describe(session, caller, row)

    def _change_attribute(
        self, row: Image, change: Change, current: ImageInfo, caller: Caller, authorize: Authorize
    ) -> None:
        if change.op == "remove":
            raise errors.Forbidden(f"Property {change.name} may not be removed.")
        if change.op == "add" and change.strict_add:
            raise errors.Conflict(f"Property {change.name} already present.")
        if change.name == "owner" and not caller.is_admin:
            raise errors.Forbidden("Owner can't be updated by non admin.")
        if change.name == "visibility":
            self._authorize_visibility(change.value, current, authorize)
        self._set(row, change.name, change.value)

    @staticmethod
    def _change_property(props: dict[str, str], change: Change) -> None:
        check_property_name(change.name)
        exists = change.name in props
        if change.op == "remove":
            if not exists:
                raise errors.Conflict(f"Property {change.name} does not exist.")
            del props[change.name]
        elif change.op == "replace" and not exists:
            raise errors.Conflict(f"Property {change.name} does not exist.")
        elif change.op == "add" and exists and change.strict_add:
            raise errors.Conflict(f"Property {change.name} already present.")
        elif change.value is None:
            # A null property (kernel_id, ramdisk_id) is an absent one: there is no null to keep.
            props.pop(change.name, None)
        else:
            props[change.name] = change.value

    @staticmethod
    def _replace_children(
        session: Session, image_id: str, props: dict[str, str], tags: Iterable[str]
    ) -> None:
        session.execute(delete(ImageProperty).where(ImageProperty.image_id == image_id))
        session.execute(delete(ImageTag).where(ImageTag.image_id == image_id))
        session.add_all(ImageProperty(image_id=image_id, name=k, value=v) for k, v in props.items())
        session.add_all(ImageTag(image_id=image_id, value=t) for t in tags)

    def delete(self, caller: Caller, image_id: str, authorize: Authorize) -> None:
        """Delete the record, then its data: data without a record is never served."""
        with self.db.session() as session:
            row = self.load(session, caller, image_id, lock=True)
            authorize("delete_image", self.describe(session, caller, row))
            if row.protected:
                raise errors.Forbidden(f"Image {image_id} is protected and cannot be deleted.")
            location = row.location
            for model in (ImageProperty, ImageTag, ImageMember):
                session.execute(delete(model).where(model.image_id == image_id))
            session.delete(row)
        if location is not None:
            self.store.delete(location)

    # -- tags and (de)activation --------------------------------------------------------

    def add_tag(self, caller: Caller, image_id: str, tag: str, authorize: Authorize) -> None:
        with self.db.session() as session:
            row = self.load(session, caller, image_id, lock=True)
            current = self.describe(session, caller, row)
            authorize("modify_image", current)
            if tag in current.tags:
                return
            if len(current.tags) >= MAX_TAGS:
                raise errors.OverLimit(f"Maximum number of image tags is {MAX_TAGS}.")
            session.add(ImageTag(image_id=image_id, value=tag))
            row.updated_at = utcnow()

    def remove_tag(self, caller: Caller, image_id: str, tag: str, authorize: Authorize) -> None:
        with self.db.session() as session:
            row = self.load(session, caller, image_id, lock=True)
            authorize("modify_image", self.describe(session, caller, row))
            gone = session.execute(
                delete(ImageTag).where(ImageTag.image_id == image_id, ImageTag.value == tag)
            )
            if gone.rowcount == 0:
                raise errors.NotFound(f"Tag {tag} not found on image {image_id}.")
            row.updated_at = utcnow()

    def set_active(self, caller: Caller, image_id: str, active: bool, authorize: Authorize) -> None:
        """Deactivate (active -> deactivated) or reactivate; repeating either is a no-op."""
        wanted, other = ("active", "deactivated") if active else ("deactivated", "active")
        with self.db.session() as session:
            row = self.load(session, caller, image_id, lock=True)
            authorize("reactivate" if active else "deactivate", self.describe(session, caller, row))
            if row.status == wanted:
                return
            if row.status != other:
                verb = "reactivate" if active else "deactivate"
                raise errors.Forbidden(f"Not allowed to {verb} image in status '{row.status}'")
            row.status = wanted
            row.updated_at = utcnow()
