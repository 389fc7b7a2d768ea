"""Image (Glance v2) rules, named and defaulted as Glance's (secure RBAC) defaults.

An operator's Glance policy file keeps working: the rule names are Glance's.
Targets are flat: `project_id` and `owner` are the image's owner,
`visibility` its visibility, and `member_id` the caller's project when it
sees a shared image as a member (None otherwise). Images another project may
not see are hidden before policy runs (404), as Glance's database layer does.
"""

from ciaostack.core.policy import base

ADMIN = "rule:admin_required"
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
IMAGE_MEMBER = "project_id:%(member_id)s"
OPEN_VISIBILITY = "'public':%(visibility)s or 'community':%(visibility)s or 'shared':%(visibility)s"
ADMIN_OR_MEMBER = f"{ADMIN} or ({PROJECT_MEMBER})"
ADMIN_OR_READER = f"{ADMIN} or (role:reader and project_id:%(project_id)s)"
READ_IMAGE = (
    f"{ADMIN} or (role:reader and (project_id:%(project_id)s or {IMAGE_MEMBER} "
    f"or {OPEN_VISIBILITY}))"
)
DOWNLOAD_IMAGE = (
    f"{ADMIN} or (role:member and (project_id:%(project_id)s or {IMAGE_MEMBER} "
    f"or {OPEN_VISIBILITY}))"
)
READ_MEMBERS = f"{ADMIN} or (role:reader and (project_id:%(project_id)s or {IMAGE_MEMBER}))"


_rule = base.rule_maker("")


IMAGE = "/v2/images/{image_id}"
MEMBERS = f"{IMAGE}/members"

RULES = [
    _rule(
        "add_image",
        f"{ADMIN} or ({PROJECT_MEMBER} and project_id:%(owner)s)",
        "Create an image (owned by the caller's project unless an admin).",
        "POST",
        "/v2/images",
    ),
    _rule("get_images", ADMIN_OR_READER, "List images.", "GET", "/v2/images"),
    _rule("get_image", READ_IMAGE, "Show an image.", "GET", IMAGE),
    _rule(
        "modify_image",
        ADMIN_OR_MEMBER,
        "Update an image, its tags, stage and import data.",
        "PATCH",
        IMAGE,
    ),
    _rule("delete_image", ADMIN_OR_MEMBER, "Delete an image.", "DELETE", IMAGE),
    _rule("publicize_image", ADMIN, "Make an image public.", "PATCH", IMAGE),
    _rule("communitize_image", ADMIN_OR_MEMBER, "Make an image community.", "PATCH", IMAGE),
    _rule("upload_image", ADMIN_OR_MEMBER, "Upload image data.", "PUT", f"{IMAGE}/file"),
    _rule("download_image", DOWNLOAD_IMAGE, "Download image data.", "GET", f"{IMAGE}/file"),
    _rule(
        "deactivate", ADMIN_OR_MEMBER, "Deactivate an image.", "POST", f"{IMAGE}/actions/deactivate"
    ),
    _rule(
        "reactivate", ADMIN_OR_MEMBER, "Reactivate an image.", "POST", f"{IMAGE}/actions/reactivate"
    ),
    _rule("add_member", ADMIN_OR_MEMBER, "Share an image with a project.", "POST", MEMBERS),
    _rule(
        "delete_member",
        ADMIN_OR_MEMBER,
        "Stop sharing an image with a project.",
        "DELETE",
        f"{MEMBERS}/{{member_id}}",
    ),
    _rule(
        "get_member", READ_MEMBERS, "Show an image membership.", "GET", f"{MEMBERS}/{{member_id}}"
    ),
    _rule("get_members", READ_MEMBERS, "List an image's members.", "GET", MEMBERS),
    _rule(
        "modify_member",
        f"{ADMIN} or (role:member and {IMAGE_MEMBER})",
        "Accept or reject a shared image (the member project).",
        "PUT",
        f"{MEMBERS}/{{member_id}}",
    ),
]
