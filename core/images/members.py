"""Image sharing: the owner offers a shared image to other projects, each accepts or rejects.

Only `shared` images have members. The owner (or an admin) sees every member;
a member project sees only its own membership, and a pending or rejected
image stays out of its default image list (see query.visible_to).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ciaostack.core import errors
from ciaostack.core.db.models import Image, ImageMember, utcnow
from ciaostack.core.images.model import MAX_MEMBERS, MEMBER_STATUSES, Caller, MemberInfo
from ciaostack.core.images.service import Authorize, Images


class ImageMembers:
    def __init__(self, images: Images) -> None:
        self.images = images

    def _shared(self, session: Session, caller: Caller, image_id: str, lock: bool = False) -> Image:
        row = self.images.load(session, caller, image_id, lock=lock)
        if row.visibility != "shared":
            raise errors.Forbidden("Only shared images have members.")
        return row

    @staticmethod
    def _find(session: Session, caller: Caller, row: Image, member_id: str) -> ImageMember:
        member = session.get(ImageMember, (row.id, member_id))
        sees_all = caller.is_admin or caller.project_id == row.owner
        if member is None or not (sees_all or member_id == caller.project_id):
            raise errors.NotFound(
                f"{member_id} not found in the member list of the image {row.id}."
            )
        return member

    def list(self, caller: Caller, image_id: str, authorize: Authorize) -> list[MemberInfo]:
        with self.images.db.session(readonly=True) as session:
            row = self._shared(session, caller, image_id)
            authorize("get_members", self.images.describe(session, caller, row))
            stmt = select(ImageMember).where(ImageMember.image_id == image_id)
            if not (caller.is_admin or caller.project_id == row.owner):
                stmt = stmt.where(ImageMember.member == caller.project_id)
            return [
                MemberInfo.of(m) for m in session.scalars(stmt.order_by(ImageMember.created_at))
            ]

    def get(
        self, caller: Caller, image_id: str, member_id: str, authorize: Authorize
    ) -> MemberInfo:
        with self.images.db.session(readonly=True) as session:
            try:
                row = self._shared(session, caller, image_id)
            except errors.Forbidden as exc:
                raise errors.NotFound(exc.message) from exc
            authorize("get_member", self.images.describe(session, caller, row))
            return MemberInfo.of(self._find(session, caller, row, member_id))

    def add(
        self, caller: Caller, image_id: str, member_id: str, authorize: Authorize
    ) -> MemberInfo:
        with self.images.db.session() as session:
            row = self._shared(session, caller, image_id, lock=True)
            authorize("add_member", self.images.describe(session, caller, row))
            if session.get(ImageMember, (image_id, member_id)) is not None:
                raise errors.Conflict(f"Member {member_id} is duplicated for image {image_id}")
            count = session.scalar(
                select(func.count())
                .select_from(ImageMember)
                .where(ImageMember.image_id == image_id)
            )
            if count >= MAX_MEMBERS:
                raise errors.OverLimit(f"Maximum number of image members is {MAX_MEMBERS}.")
            now = utcnow()
            member = ImageMember(
                image_id=image_id,
                member=member_id,
                status="pending",
                created_at=now,
                updated_at=now,
            )
            session.add(member)
            return MemberInfo.of(member)

    def update(
        self, caller: Caller, image_id: str, member_id: str, status: str, authorize: Authorize
    ) -> MemberInfo:
        with self.images.db.session() as session:
            row = self._shared(session, caller, image_id, lock=True)
            member = self._find(session, caller, row, member_id)
            authorize("modify_member", self.images.describe(session, caller, row))
            if status not in MEMBER_STATUSES:
                raise errors.BadRequest(
                    'Incorrect request: Status must be "pending", "accepted" or "rejected".'
                )
            member.status = status
            member.updated_at = utcnow()
            return MemberInfo.of(member)

    def remove(self, caller: Caller, image_id: str, member_id: str, authorize: Authorize) -> None:
        with self.images.db.session() as session:
            row = self._shared(session, caller, image_id, lock=True)
            member = self._find(session, caller, row, member_id)
            authorize("delete_member", self.images.describe(session, caller, row))
            session.delete(member)
