"""Server snapshots as images: the record Nova makes, and how a node's bytes reach it.

A snapshot is an image owned by the server's project, created `queued` in the
same transaction as the instance's task, with the properties Nova gives one
(image_type=snapshot, instance_uuid, base_image_ref, user_id... and what the
base image had that may be inherited). The compute node that holds the server
copies its disk and uploads it, but a node has no database and no user's
credentials: the SNAPSHOT command carries an upload URL and an upload grant,
an HMAC-signed statement "data for image X of project P, until T", which the
image API accepts for that one image only. The grant is signed with a key
derived from the token key repository (every API host has it already), and
it is useless once the image has data: uploads are accepted only while the
image is `queued`. It is never logged.

A backup (createBackup) is a snapshot whose grant also carries its rotation,
as the API decided it: once the new backup's data is stored, the oldest
backups of the same server and backup type beyond the rotation are deleted,
as Nova's compute manager does after a backup (a failed backup deletes none).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db.models import Image, ImageMember, ImageProperty, ImageTag, utcnow
from ciaostack.core.identity.keys import KeyRepository
from ciaostack.core.images.model import MAX_PROPERTIES, Caller, ImageInfo, check_property_name
from ciaostack.core.images.service import Authorize, Change, Images
from ciaostack.core.images.transfer import ImageData

LOG = logging.getLogger("ciaostack.images")

#: Where a node uploads a snapshot (the image API's internal route, not a Glance one).
UPLOAD_PATH = "/image/internal/snapshots/{image_id}"
#: Seconds a grant stays good: enough for the node to copy a large disk first.
GRANT_LIFETIME = 6 * 3600
_PURPOSE = "snapshot-upload"
_KEY_LABEL = b"ciaostack snapshot upload grants"
# Base image properties a snapshot does not inherit (Nova's list, plus Glance's own).
_NOT_INHERITED = frozenset(
    {
        "cinder_encryption_key_id",
        "cinder_encryption_key_deletion_policy",
        "img_signature",
        "img_signature_hash_method",
        "img_signature_key_type",
        "img_signature_certificate_uuid",
    }
)
_NOT_INHERITED_PREFIX = "os_glance"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclasses.dataclass(frozen=True)
class Rotation:
    """After a backup: keep the newest `keep` backups of `instance_id` of `backup_type`."""

    instance_id: str
    backup_type: str
    keep: int


@dataclasses.dataclass(frozen=True)
class Grant:
    """What a verified grant allows: data for `image_id`, a snapshot of `instance_id`, on
    behalf of this project/user, and for a backup, the rotation that follows (of that
    same instance)."""

    image_id: str
    project_id: str
    user_id: str
    instance_id: str
    rotation: Rotation | None = None


class UploadGrants:
    """Issue and verify upload grants with keys derived from the token key repository
    (the newest signs; every key still in the repository verifies, so a rotation does
    not void grants in flight)."""

    def __init__(self, key_repository: Path, lifetime: int = GRANT_LIFETIME) -> None:
        self.repo = KeyRepository(key_repository)
        self.lifetime = lifetime

    def _keys(self) -> list[bytes]:
        """Derived keys, primary first; none when the repository is missing."""
        indexes = sorted(self.repo.version(), key=lambda i: (i == 0, -i))
        return [
            hmac.new((self.repo.path / str(i)).read_bytes().strip(), _KEY_LABEL, "sha256").digest()
            for i in indexes
        ]

    @staticmethod
    def _sign(key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode("utf-8", "surrogatepass"), "sha256").digest())

    def issue(self, grant: Grant, now: float | None = None) -> str:
        keys = self._keys()
        if not keys:
            raise errors.Conflict("Snapshots need the token key repository, which is missing.")
        claims = {
            "pur": _PURPOSE,
            "img": grant.image_id,
            "prj": grant.project_id,
            "usr": grant.user_id,
            "ins": grant.instance_id,
            "exp": int((now or time.time()) + self.lifetime),
        }
        if grant.rotation is not None:
            rotation = grant.rotation
            claims["rot"] = [rotation.instance_id, rotation.backup_type, rotation.keep]
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(keys[0], payload)}"

    def verify(self, token: str, image_id: str, now: float | None = None) -> Grant:
        """The grant `token` makes for `image_id`; 401 for anything else."""
        refused = errors.Unauthorized("The upload grant is not valid for this image.")
        payload, _, signature = (token or "").partition(".")
        presented = signature.encode("utf-8", "surrogatepass")
        if not any(
            hmac.compare_digest(self._sign(key, payload).encode(), presented)
            for key in self._keys()
        ):
            raise refused
        try:
            claims = json.loads(_unb64(payload))
            rotation = None
            if "rot" in claims:
                instance_id, backup_type, keep = claims["rot"]
                rotation = Rotation(str(instance_id), str(backup_type), int(keep))
            grant = Grant(
                str(claims["img"]),
                str(claims["prj"]),
                str(claims["usr"]),
                str(claims["ins"]),
                rotation,
            )
            fresh = claims.get("pur") == _PURPOSE and float(claims["exp"]) > (now or time.time())
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise refused from exc
        if not fresh or grant.image_id != image_id:
            raise refused
        if rotation is not None and rotation.instance_id != grant.instance_id:
            raise refused
        return grant


@dataclasses.dataclass(frozen=True)
class _Base:
    """What a snapshot takes from the image its server was booted from."""

    properties: dict[str, str]
    min_ram: int
    min_disk: int
    # The image the chain of snapshots started from.
    base_image_ref: str


def _inherited(session: Session, base_image_id: str) -> _Base:
    base = session.get(Image, base_image_id) if base_image_id else None
    if base is None:
        return _Base({}, 0, 0, base_image_id)
    rows = session.execute(
        select(ImageProperty.name, ImageProperty.value).where(ImageProperty.image_id == base.id)
    )
    props = {
        name: value
        for name, value in rows.tuples()
        if name not in _NOT_INHERITED and not name.startswith(_NOT_INHERITED_PREFIX)
    }
    return _Base(props, base.min_ram, base.min_disk, props.get("base_image_ref", base.id))


def create_record(
    session: Session,
    images: Images,
    *,
    name: str,
    owner: str,
    base_image_id: str,
    min_disk: int,
    properties: Mapping[str, str],
) -> Image:
    """A queued, private snapshot image owned by `owner`, in the caller's transaction.

    `min_disk` is the server's flavor disk (the snapshot needs at least that much, or
    the base image's own minimum if larger); `properties` (the instance's and the
    request's) win over inherited ones. The
    disk and container formats are left unset: the node says what it produced
    when it uploads.
    """
    try:
        images.check_count_quota(session, owner)
    except errors.OverLimit as exc:
        raise errors.Forbidden(f"Quota exceeded for images: {exc.message}") from exc
    base = _inherited(session, base_image_id)
    merged = {**base.properties, "base_image_ref": base.base_image_ref, **properties}
    for key in merged:
        try:
            check_property_name(key)
        except errors.CoreError as exc:
            raise errors.BadRequest(f"Invalid image metadata: {exc.message}") from exc
    if len(merged) > MAX_PROPERTIES:
        raise errors.Forbidden(f"Maximum number of image properties is {MAX_PROPERTIES}.")
    now = utcnow()
    row = Image(
        id=str(uuid.uuid4()),
        name=name,
        owner=owner,
        status="queued",
        visibility="private",
        protected=False,
        os_hidden=False,
        min_disk=max(min_disk, base.min_disk),
        min_ram=base.min_ram,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    session.add_all(ImageProperty(image_id=row.id, name=k, value=v) for k, v in merged.items())
    return row


def unfinished(session: Session, instance_id: str, project_id: str) -> list[str]:
    """The ids of `instance_id`'s snapshot images still waiting for their data."""
    return list(
        session.scalars(
            select(Image.id)
            .join(ImageProperty, ImageProperty.image_id == Image.id)
            .where(
                Image.owner == project_id,
                Image.status == "queued",
                ImageProperty.name == "instance_uuid",
                ImageProperty.value == instance_id,
            )
        )
    )


def discard_unfinished(session: Session, image_id: str, instance_id: str, project_id: str) -> None:
    """Delete the snapshot image of `instance_id` (owned by `project_id`) that a failed
    snapshot will never fill, as Nova does. A node names the image in its failure, so
    only a queued image with no data that is that instance's snapshot goes: any other
    image is left alone."""
    row = session.get(Image, image_id, with_for_update=True)
    if row is None or row.status != "queued" or row.location is not None:
        return
    instance_uuid = session.scalar(
        select(ImageProperty.value).where(
            ImageProperty.image_id == image_id, ImageProperty.name == "instance_uuid"
        )
    )
    if row.owner != project_id or instance_uuid != instance_id:
        LOG.warning(
            "snapshot failure names image=%s, not a snapshot of instance=%s: kept",
            image_id,
            instance_id,
        )
        return
    for model in (ImageProperty, ImageTag, ImageMember):
        session.execute(delete(model).where(model.image_id == image_id))
    session.delete(row)


def discard_shelved(session: Session, image_id: str) -> str | None:
    """Delete the image a shelve kept a server's disk in, once the server runs again or
    is gone (as Nova does); returns where its data is, for the caller to delete from the
    store after the commit (data without a record is never served)."""
    row = session.get(Image, image_id, with_for_update=True)
    if row is None:
        return None
    for model in (ImageProperty, ImageTag, ImageMember):
        session.execute(delete(model).where(model.image_id == image_id))
    session.delete(row)
    return row.location


def _granted(grant: Grant, status: str | None = "queued") -> Authorize:
    """The grant is the authorization (no policy rule applies to a node's upload), for
    the granted instance's own images only, and (`status`) in that status."""

    def authorize(rule: str, image: ImageInfo) -> None:
        own = image.owner == grant.project_id
        of_instance = image.properties.get("instance_uuid") == grant.instance_id
        if not (own and of_instance) or (status is not None and image.status != status):
            raise errors.Unauthorized("The upload grant is not valid for this image.")

    return authorize


def receive(
    images: Images,
    data: ImageData,
    grants: UploadGrants,
    image_id: str,
    token: str,
    disk_format: str,
    container_format: str,
    chunks: Iterable[bytes],
    declared_size: int | None,
) -> None:
    """A node's upload: set the formats it produced, then store the data (queued ->
    saving -> active) exactly as a Glance upload would, quotas included."""
    grant = grants.verify(token, image_id)
    caller = Caller(project_id=grant.project_id, user_id=grant.user_id, is_admin=False)
    changes = [
        Change("replace", "disk_format", disk_format),
        Change("replace", "container_format", container_format),
    ]
    images.update(caller, image_id, changes, _granted(grant))
    data.upload(caller, image_id, chunks, declared_size, _granted(grant))
    if grant.rotation is not None:
        rotate(images, caller, grant)


def rotate(images: Images, caller: Caller, grant: Grant) -> list[str]:
    """Delete the grant's project's backups of the grant's server and the rotation's type
    beyond the newest `keep` (all of them when `keep` is 0, as Nova). A backup that
    cannot be deleted (protected, already gone, not that server's) is skipped, as Nova
    skips it. Returns the ids deleted."""
    rotation = grant.rotation
    if rotation is None or rotation.instance_id != grant.instance_id:
        return []
    wanted = {
        "image_type": "backup",
        "backup_type": rotation.backup_type,
        "instance_uuid": rotation.instance_id,
    }
    stmt = select(Image.id).where(Image.owner == grant.project_id)
    for name, value in wanted.items():
        stmt = stmt.where(
            exists().where(
                ImageProperty.image_id == Image.id,
                ImageProperty.name == name,
                ImageProperty.value == value,
            )
        )
    with images.db.session(readonly=True) as session:
        newest_first = session.scalars(
            stmt.order_by(Image.created_at.desc(), Image.id.desc())
        ).all()
    deleted: list[str] = []
    for image_id in newest_first[rotation.keep :]:
        try:
            images.delete(caller, image_id, _granted(grant, status=None))
        except errors.CoreError as exc:
            LOG.info("backup rotation: image=%s not deleted: %s", image_id, exc.message)
            continue
        deleted.append(image_id)
    return deleted
