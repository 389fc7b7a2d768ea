"""Glance v2 over real HTTP: records, lists, PATCH, visibility, sharing, tags, policy.

Four projects take part: the bootstrap admin's, and three ordinary ones
("alpha", "beta", "gamma"), each with a user holding the member role, made
through the identity API. Data transfers are in test_images_data.py.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.cloud import Cloud
from tests.support.identity import create_user, grant, new_member, role_id

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PATCH_21 = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
PATCH_20 = {"Content-Type": "application/openstack-images-v2.0-json-patch"}


@dataclasses.dataclass
class Client:
    """One user's token against the image API."""

    cloud: Cloud
    token: str
    project_id: str

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.cloud.request(method, f"/image/v2{path}", self.token, **kwargs)

    def create(self, **body: Any) -> dict[str, Any]:
        resp = self.call("POST", "/images", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def patch(
        self, image_id: str, ops: list[dict[str, Any]], headers=PATCH_21
    ) -> requests.Response:  # noqa: ANN001
        return self.call("PATCH", f"/images/{image_id}", json=ops, headers=headers)

    def ids(self, **params: Any) -> list[str]:
        resp = self.call("GET", "/images", params=params)
        assert resp.status_code == 200, resp.text
        return [image["id"] for image in resp.json()["images"]]


def project_user(cloud: Cloud, admin: Client) -> Client:
    """A fresh project and a user with the member role on it."""
    member = new_member(cloud, admin.token)
    return Client(cloud, member.token(cloud), member.project_id)


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> Client:
    resp = cloud.auth()
    return Client(cloud, resp.headers["X-Subject-Token"], resp.json()["token"]["project"]["id"])


@pytest.fixture(scope="module")
def alpha(cloud: Cloud, admin: Client) -> Client:
    return project_user(cloud, admin)


@pytest.fixture(scope="module")
def beta(cloud: Cloud, admin: Client) -> Client:
    return project_user(cloud, admin)


@pytest.fixture(scope="module")
def gamma(cloud: Cloud, admin: Client) -> Client:
    return project_user(cloud, admin)


@pytest.fixture
def image(alpha: Client) -> Iterator[dict[str, Any]]:
    """A private image of alpha's, deleted afterwards."""
    created = alpha.create(
        name=f"img-{uuid.uuid4().hex[:8]}",
        disk_format="qcow2",
        container_format="bare",
        visibility="private",
    )
    yield created
    alpha.patch(created["id"], [{"op": "replace", "path": "/protected", "value": False}])
    alpha.call("DELETE", f"/images/{created['id']}")


# -- discovery --------------------------------------------------------------------------


def test_version_documents(cloud: Cloud) -> None:
    for path in ("/image", "/image/"):
        root = requests.get(f"{cloud.url}{path}", timeout=10)
        assert root.status_code == 300
        versions = root.json()["versions"]
        current = [v for v in versions if v["status"] == "CURRENT"]
        assert len(current) == 1 and current[0]["id"].startswith("v2.")
        assert all(v["status"] in ("CURRENT", "SUPPORTED") for v in versions)
        assert all(
            v["links"][0] == {"rel": "self", "href": f"{cloud.url}/image/v2/"} for v in versions
        )
    assert requests.get(f"{cloud.url}/image/versions", timeout=10).status_code == 200


def test_catalog_has_unversioned_image_endpoint(cloud: Cloud) -> None:
    catalog = cloud.auth().json()["token"]["catalog"]
    [image] = [s for s in catalog if s["type"] == "image"]
    assert image["name"] == "glance"
    assert {e["url"] for e in image["endpoints"]} == {f"{cloud.url}/image"}


def test_schemas_and_info(admin: Client) -> None:
    image = admin.call("GET", "/schemas/image").json()
    assert image["name"] == "image"
    assert image["additionalProperties"] == {"type": "string"}
    assert "raw" in image["properties"]["disk_format"]["enum"]
    assert admin.call("GET", "/schemas/images").json()["name"] == "images"
    assert admin.call("GET", "/schemas/member").json()["name"] == "member"
    assert admin.call("GET", "/schemas/members").json()["name"] == "members"
    methods = admin.call("GET", "/info/import").json()["import-methods"]
    assert "glance-direct" in methods["value"]
    [store] = admin.call("GET", "/info/stores").json()["stores"]
    assert store["id"] == "file" and store["default"] == "true"


def test_unauthenticated_is_401_in_glance_format(cloud: Cloud) -> None:
    resp = requests.get(f"{cloud.url}/image/v2/images", timeout=10)
    assert resp.status_code == 401
    assert resp.json()["code"] == "401 Unauthorized" and resp.json()["message"]
    assert resp.headers["WWW-Authenticate"].startswith("Keystone uri=")


# -- create, show, update, delete ------------------------------------------------------


def test_create_show_and_defaults(alpha: Client) -> None:
    resp = alpha.call(
        "POST",
        "/images",
        json={"name": "plain", "os_distro": "debian", "tags": ["a", "b", "a"]},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert resp.headers["Location"].endswith(f"/image/v2/images/{body['id']}")
    assert "glance-direct" in resp.headers["OpenStack-image-import-methods"].split(",")
    assert resp.headers["OpenStack-image-store-ids"] == "file"
    assert body["status"] == "queued" and body["visibility"] == "shared"
    assert body["owner"] == alpha.project_id
    assert body["os_distro"] == "debian" and sorted(body["tags"]) == ["a", "b"]
    assert body["size"] is None and body["checksum"] is None and body["os_hash_value"] is None
    assert body["protected"] is False and body["os_hidden"] is False
    assert body["min_disk"] == 0 and body["min_ram"] == 0
    assert ISO_Z.match(body["created_at"]) and ISO_Z.match(body["updated_at"])
    assert body["self"] == f"/v2/images/{body['id']}"
    assert body["file"] == f"/v2/images/{body['id']}/file"
    assert body["schema"] == "/v2/schemas/image"
    assert "stores" not in body
    shown = alpha.call("GET", f"/images/{body['id']}")
    assert shown.status_code == 200 and shown.json() == body
    assert alpha.call("DELETE", f"/images/{body['id']}").status_code == 204
    assert alpha.call("GET", f"/images/{body['id']}").status_code == 404
    assert alpha.call("DELETE", f"/images/{body['id']}").status_code == 404


def test_empty_image_id_is_404_and_collection_methods_405(alpha: Client) -> None:
    for method in ("GET", "DELETE", "PATCH"):
        resp = alpha.call(method, "/images/")
        assert resp.status_code == 404, (method, resp.text)
    assert alpha.call("DELETE", "/images").status_code == 405
    assert alpha.call("PUT", "/images").status_code == 405


def test_create_with_chosen_id_and_duplicate(alpha: Client) -> None:
    chosen = str(uuid.uuid4())
    assert alpha.create(id=chosen, name="chosen")["id"] == chosen
    again = alpha.call("POST", "/images", json={"id": chosen})
    assert again.status_code == 409 and again.json()["code"] == "409 Conflict"
    assert alpha.call("DELETE", f"/images/{chosen}").status_code == 204


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": 5}, 400),
        ({"min_ram": "lots"}, 400),
        ({"protected": "yes"}, 400),
        ({"visibility": "everyone"}, 400),
        ({"disk_format": "floppy"}, 400),
        ({"container_format": "crate"}, 400),
        ({"id": "not-a-uuid"}, 400),
        ({"tags": "a,b"}, 400),
        ({"extra": 7}, 400),
        ({"min_disk": -1}, 400),
        ({"kernel_id": "not-a-uuid"}, 400),
        ({"status": "active"}, 403),
        ({"checksum": "0" * 32}, 403),
        ({"size": 10}, 403),
        ({"self": "/elsewhere"}, 403),
        ({"locations": []}, 403),
        ({"os_glance_foo": "bar"}, 403),
        ({"deleted": "true"}, 403),
        ({"x" * 256: "long"}, 400),
    ],
)
def test_create_refuses_bad_bodies(alpha: Client, body: dict[str, Any], status: int) -> None:
    resp = alpha.call("POST", "/images", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["code"].startswith(str(status)) and resp.json()["message"]


def test_create_refuses_non_object_and_broken_json(alpha: Client) -> None:
    assert alpha.call("POST", "/images", json=["name"]).status_code == 400
    broken = alpha.call(
        "POST", "/images", data="{nope", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["code"] == "400 Bad Request"


def test_only_admins_publicize_and_choose_owners(alpha: Client, admin: Client) -> None:
    assert alpha.call("POST", "/images", json={"visibility": "public"}).status_code == 403
    other = alpha.call("POST", "/images", json={"owner": "someone-else"})
    assert other.status_code == 403
    community = alpha.create(visibility="community")
    assert community["visibility"] == "community"
    assert alpha.call("DELETE", f"/images/{community['id']}").status_code == 204
    public = admin.create(name="pub", visibility="public", owner=alpha.project_id)
    assert public["owner"] == alpha.project_id
    assert admin.call("DELETE", f"/images/{public['id']}").status_code == 204


def test_patch_core_and_extra_properties(alpha: Client, image: dict[str, Any]) -> None:
    iid = image["id"]
    resp = alpha.patch(
        iid,
        [
            {"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "add", "path": "/os_distro", "value": "ubuntu"},
            {"op": "add", "path": "/hw~1disk", "value": "slash"},
            {"op": "replace", "path": "/min_ram", "value": 512},
            {"op": "replace", "path": "/tags", "value": ["x", "y"]},
            {"op": "add", "path": "/protected", "value": True},
        ],
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["name"] == "renamed" and body["os_distro"] == "ubuntu"
    assert body["hw/disk"] == "slash" and body["min_ram"] == 512
    assert sorted(body["tags"]) == ["x", "y"] and body["protected"] is True
    resp = alpha.patch(
        iid,
        [
            {"op": "replace", "path": "/os_distro", "value": "debian"},
            {"op": "remove", "path": "/hw~1disk"},
        ],
    )
    assert resp.status_code == 200
    assert resp.json()["os_distro"] == "debian" and "hw/disk" not in resp.json()
    assert alpha.call("GET", f"/images/{iid}").json()["os_distro"] == "debian"


def test_patch_v20_dialect(alpha: Client, image: dict[str, Any]) -> None:
    iid = image["id"]
    resp = alpha.patch(iid, [{"replace": "/name", "value": "old-style"}], headers=PATCH_20)
    assert resp.status_code == 200 and resp.json()["name"] == "old-style"
    assert alpha.patch(iid, [{"add": "/foo", "value": "1"}], headers=PATCH_20).status_code == 200
    again = alpha.patch(iid, [{"add": "/foo", "value": "2"}], headers=PATCH_20)
    assert again.status_code == 409
    # v2.1's add replaces.
    assert alpha.patch(iid, [{"op": "add", "path": "/foo", "value": "2"}]).json()["foo"] == "2"


@pytest.mark.parametrize(
    ("ops", "status"),
    [
        ({"op": "replace"}, 400),
        ([{"op": "move", "path": "/name", "value": "x"}], 400),
        ([{"op": "replace", "path": "name", "value": "x"}], 400),
        ([{"op": "replace", "path": "/a/b", "value": "x"}], 400),
        ([{"op": "replace", "path": "/name"}], 400),
        (["replace"], 400),
        ([{"op": "replace", "path": "/min_disk", "value": "big"}], 400),
        ([{"op": "replace", "path": "/visibility", "value": "world"}], 400),
        ([{"op": "add", "path": "/extra", "value": 3}], 400),
        ([{"op": "replace", "path": "/status", "value": "active"}], 403),
        ([{"op": "replace", "path": "/size", "value": 3}], 403),
        ([{"op": "add", "path": "/os_glance_x", "value": "y"}], 403),
        ([{"op": "add", "path": "/locations", "value": []}], 403),
        ([{"op": "remove", "path": "/name"}], 403),
        ([{"op": "replace", "path": "/owner", "value": "other"}], 403),
        ([{"op": "replace", "path": "/visibility", "value": "public"}], 403),
        ([{"op": "replace", "path": "/no_such", "value": "x"}], 409),
        ([{"op": "remove", "path": "/no_such"}], 409),
    ],
)
def test_bad_patches(alpha: Client, image: dict[str, Any], ops: Any, status: int) -> None:
    resp = alpha.patch(image["id"], ops)
    assert resp.status_code == status, resp.text
    assert alpha.call("GET", f"/images/{image['id']}").json() == image


def test_patch_needs_a_patch_media_type(alpha: Client, image: dict[str, Any]) -> None:
    resp = alpha.call(
        "PATCH", f"/images/{image['id']}", json=[{"op": "replace", "path": "/name", "value": "x"}]
    )
    assert resp.status_code == 415
    assert "openstack-images-v2.1-json-patch" in resp.headers["Accept-Patch"]


def test_formats_frozen_once_data_arrives(alpha: Client) -> None:
    created = alpha.create(disk_format="raw", container_format="bare")
    iid = created["id"]
    put = alpha.call(
        "PUT",
        f"/images/{iid}/file",
        data=b"abc",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 204
    changed = alpha.patch(iid, [{"op": "replace", "path": "/disk_format", "value": "qcow2"}])
    assert changed.status_code == 403
    renamed = alpha.patch(iid, [{"op": "replace", "path": "/name", "value": "still-fine"}])
    assert renamed.status_code == 200
    assert alpha.call("DELETE", f"/images/{iid}").status_code == 204


def test_protected_image_cannot_be_deleted(alpha: Client) -> None:
    iid = alpha.create(protected=True)["id"]
    resp = alpha.call("DELETE", f"/images/{iid}")
    assert resp.status_code == 403 and "protected" in resp.json()["message"]
    alpha.patch(iid, [{"op": "replace", "path": "/protected", "value": False}])
    assert alpha.call("DELETE", f"/images/{iid}").status_code == 204


# -- visibility between projects ---------------------------------------------------------


def test_private_images_of_other_projects_do_not_exist(
    alpha: Client, beta: Client, admin: Client, image: dict[str, Any]
) -> None:
    iid = image["id"]
    for method, path, kwargs in (
        ("GET", f"/images/{iid}", {}),
        ("DELETE", f"/images/{iid}", {}),
        ("GET", f"/images/{iid}/file", {}),
        ("PUT", f"/images/{iid}/tags/t", {}),
        ("POST", f"/images/{iid}/actions/deactivate", {}),
        ("GET", f"/images/{iid}/members", {}),
        (
            "PUT",
            f"/images/{iid}/file",
            {"data": b"x", "headers": {"Content-Type": "application/octet-stream"}},
        ),
    ):
        resp = beta.call(method, path, **kwargs)
        assert resp.status_code == 404, (method, path, resp.text)
    assert beta.patch(iid, [{"op": "replace", "path": "/name", "value": "x"}]).status_code == 404
    assert iid not in beta.ids()
    assert alpha.call("GET", f"/images/{iid}").status_code == 200
    # An admin sees and lists every project's images.
    assert admin.call("GET", f"/images/{iid}").status_code == 200
    assert iid in admin.ids(limit=1000)


def test_public_and_community_images_are_read_only_for_others(
    alpha: Client, beta: Client, admin: Client
) -> None:
    public = admin.create(
        name="pub", visibility="public", disk_format="raw", container_format="bare"
    )
    community = alpha.create(name="comm", visibility="community")
    try:
        assert beta.call("GET", f"/images/{public['id']}").status_code == 200
        assert public["id"] in beta.ids()
        renamed = beta.patch(public["id"], [{"op": "replace", "path": "/name", "value": "x"}])
        assert renamed.status_code == 403
        assert beta.call("DELETE", f"/images/{public['id']}").status_code == 403
        # Community images are shown, but listed only on request (or to their owner).
        assert beta.call("GET", f"/images/{community['id']}").status_code == 200
        assert community["id"] not in beta.ids()
        assert community["id"] in beta.ids(visibility="community")
        assert community["id"] in alpha.ids()
    finally:
        admin.call("DELETE", f"/images/{public['id']}")
        alpha.call("DELETE", f"/images/{community['id']}")


def test_readers_read_but_do_not_change(cloud: Cloud, admin: Client, alpha: Client) -> None:
    """A user with only the reader role on alpha's project."""
    password = "reader-password"
    user = create_user(cloud, admin.token, password)
    grant(cloud, admin.token, alpha.project_id, user["id"], role_id(cloud, admin.token, "reader"))
    project = cloud.request("GET", f"/identity/v3/projects/{alpha.project_id}", admin.token)
    resp = cloud.auth(user["name"], password, project=project.json()["project"]["name"])
    reader = Client(cloud, resp.headers["X-Subject-Token"], alpha.project_id)
    iid = alpha.create(name="read-me", visibility="private")["id"]
    try:
        assert reader.call("GET", f"/images/{iid}").status_code == 200
        assert iid in reader.ids()
        assert (
            reader.patch(iid, [{"op": "replace", "path": "/name", "value": "x"}]).status_code == 403
        )
        assert reader.call("PUT", f"/images/{iid}/tags/t").status_code == 403
        assert reader.call("DELETE", f"/images/{iid}").status_code == 403
        assert reader.call("POST", "/images", json={"name": "mine"}).status_code == 403
    finally:
        alpha.call("DELETE", f"/images/{iid}")


# -- sharing ---------------------------------------------------------------------------------


def test_members_share_accept_reject(alpha: Client, beta: Client, gamma: Client) -> None:
    iid = alpha.create(name="to-share", disk_format="raw", container_format="bare")["id"]
    try:
        assert gamma.call("GET", f"/images/{iid}").status_code == 404
        added = alpha.call("POST", f"/images/{iid}/members", json={"member": beta.project_id})
        assert added.status_code == 200, added.text
        member = added.json()
        assert member["status"] == "pending" and member["image_id"] == iid
        assert member["member_id"] == beta.project_id and ISO_Z.match(member["created_at"])
        assert member["schema"] == "/v2/schemas/member"
        dup = alpha.call("POST", f"/images/{iid}/members", json={"member": beta.project_id})
        assert dup.status_code == 409
        alpha.call("POST", f"/images/{iid}/members", json={"member": gamma.project_id})

        # Pending: visible to the member, but out of its default list.
        assert beta.call("GET", f"/images/{iid}").status_code == 200
        assert iid not in beta.ids()
        assert iid in beta.ids(member_status="pending", visibility="shared")
        assert iid not in beta.ids(member_status="accepted", visibility="shared")

        # The owner sees every member, a member only itself.
        owner_view = alpha.call("GET", f"/images/{iid}/members").json()
        assert {m["member_id"] for m in owner_view["members"]} == {
            beta.project_id,
            gamma.project_id,
        }
        assert owner_view["schema"] == "/v2/schemas/members"
        own = beta.call("GET", f"/images/{iid}/members").json()["members"]
        assert [m["member_id"] for m in own] == [beta.project_id]
        other = beta.call("GET", f"/images/{iid}/members/{gamma.project_id}")
        assert other.status_code == 404

        # Only the member answers; the owner cannot accept on its behalf.
        path = f"/images/{iid}/members/{beta.project_id}"
        assert alpha.call("PUT", path, json={"status": "accepted"}).status_code == 403
        assert beta.call("PUT", path, json={"status": "maybe"}).status_code == 400
        assert beta.call("PUT", path, json={"state": "accepted"}).status_code == 400
        accepted = beta.call("PUT", path, json={"status": "accepted"})
        assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
        assert beta.call("GET", path).json()["status"] == "accepted"
        assert iid in beta.ids()

        # A member reads but does not manage the image or its members.
        assert beta.call("DELETE", f"/images/{iid}").status_code == 403
        more = beta.call("POST", f"/images/{iid}/members", json={"member": "x"})
        assert more.status_code == 403
        assert beta.call("DELETE", path).status_code == 403

        rejected = gamma.call(
            "PUT", f"/images/{iid}/members/{gamma.project_id}", json={"status": "rejected"}
        )
        assert rejected.status_code == 200
        assert iid not in gamma.ids()
        assert iid in gamma.ids(member_status="rejected", visibility="shared")

        # Removing the membership hides the image again.
        assert alpha.call("DELETE", path).status_code == 204
        assert beta.call("GET", f"/images/{iid}").status_code == 404
        assert alpha.call("GET", path).status_code == 404
    finally:
        alpha.call("DELETE", f"/images/{iid}")


def test_only_shared_images_have_members(alpha: Client, image: dict[str, Any]) -> None:
    resp = alpha.call("POST", f"/images/{image['id']}/members", json={"member": "someone"})
    assert resp.status_code == 403
    assert alpha.call("GET", f"/images/{image['id']}/members").status_code == 403
    for body in ({}, {"member": ""}, {"member": 5}, []):
        iid = image["id"]
        assert alpha.call("POST", f"/images/{iid}/members", json=body).status_code == 400


# -- tags, hiding, (de)activation ------------------------------------------------------------


def test_tags(alpha: Client, image: dict[str, Any]) -> None:
    iid = image["id"]
    assert alpha.call("PUT", f"/images/{iid}/tags/blue").status_code == 204
    assert alpha.call("PUT", f"/images/{iid}/tags/blue").status_code == 204
    assert alpha.call("PUT", f"/images/{iid}/tags/green").status_code == 204
    assert sorted(alpha.call("GET", f"/images/{iid}").json()["tags"]) == ["blue", "green"]
    assert iid in alpha.ids(tag="blue")
    assert iid in alpha.ids(tag=["blue", "green"])
    assert iid not in alpha.ids(tag=["blue", "red"])
    assert alpha.call("DELETE", f"/images/{iid}/tags/blue").status_code == 204
    assert alpha.call("DELETE", f"/images/{iid}/tags/blue").status_code == 404
    assert alpha.call("PUT", f"/images/{iid}/tags/{'t' * 256}").status_code == 400


def test_hidden_images_are_listed_only_on_request(alpha: Client) -> None:
    iid = alpha.create(os_hidden=True)["id"]
    assert iid not in alpha.ids()
    assert iid in alpha.ids(os_hidden="true")
    assert alpha.call("GET", "/images", params={"os_hidden": "maybe"}).status_code == 400
    alpha.patch(iid, [{"op": "replace", "path": "/os_hidden", "value": False}])
    assert iid in alpha.ids()
    alpha.call("DELETE", f"/images/{iid}")


def test_deactivate_and_reactivate(alpha: Client, admin: Client) -> None:
    iid = alpha.create(disk_format="raw", container_format="bare")["id"]
    queued = alpha.call("POST", f"/images/{iid}/actions/deactivate")
    assert queued.status_code == 403
    alpha.call(
        "PUT",
        f"/images/{iid}/file",
        data=b"payload",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert alpha.call("POST", f"/images/{iid}/actions/deactivate").status_code == 204
    assert alpha.call("POST", f"/images/{iid}/actions/deactivate").status_code == 204
    assert alpha.call("GET", f"/images/{iid}").json()["status"] == "deactivated"
    assert alpha.call("GET", f"/images/{iid}/file").status_code == 403
    assert admin.call("GET", f"/images/{iid}/file").content == b"payload"
    assert alpha.call("POST", f"/images/{iid}/actions/reactivate").status_code == 204
    assert alpha.call("GET", f"/images/{iid}").json()["status"] == "active"
    assert alpha.call("GET", f"/images/{iid}/file").content == b"payload"
    alpha.call("DELETE", f"/images/{iid}")


# -- lists: filters, sorting, paging -------------------------------------------------------------


@pytest.fixture(scope="module")
def listed(gamma: Client) -> Iterator[list[dict[str, Any]]]:
    """Five images of gamma's with distinct names, sizes and formats."""
    made = []
    for i, (disk, size) in enumerate(
        (("raw", 30), ("qcow2", 10), ("raw", 50), ("iso", 20), ("raw", 40))
    ):
        image = gamma.create(
            name=f"list-{i}",
            disk_format=disk,
            container_format="bare",
            tags=["listed", f"n{i}"],
            os_distro=f"distro-{i % 2}",
        )
        gamma.call(
            "PUT",
            f"/images/{image['id']}/file",
            data=b"x" * size,
            headers={"Content-Type": "application/octet-stream"},
        )
        made.append(gamma.call("GET", f"/images/{image['id']}").json())
    yield made
    for image in made:
        gamma.call("DELETE", f"/images/{image['id']}")


def test_list_filters(gamma: Client, listed: list[dict[str, Any]]) -> None:
    ids = [i["id"] for i in listed]
    assert set(gamma.ids(tag="listed")) == set(ids)
    assert set(gamma.ids(tag="listed", disk_format="raw")) == {ids[0], ids[2], ids[4]}
    assert set(gamma.ids(tag="listed", disk_format="in:iso,qcow2")) == {ids[1], ids[3]}
    assert gamma.ids(name="list-2") == [ids[2]]
    assert set(gamma.ids(name='in:"list-1",list-3')) == {ids[1], ids[3]}
    assert set(gamma.ids(tag="listed", size_min=20, size_max=40)) == {ids[0], ids[3], ids[4]}
    assert gamma.ids(tag="listed", size=50) == [ids[2]]
    assert set(gamma.ids(tag="listed", os_distro="distro-1")) == {ids[1], ids[3]}
    assert set(gamma.ids(tag="listed", status="active")) == set(ids)
    assert gamma.ids(tag="listed", status="queued") == []
    assert set(gamma.ids(owner=gamma.project_id, tag="listed")) == set(ids)
    assert gamma.ids(checksum=listed[1]["checksum"]) == [ids[1]]
    assert gamma.ids(os_hash_value=listed[1]["os_hash_value"]) == [ids[1]]
    created = listed[2]["created_at"]
    after = set(gamma.ids(tag="listed", created_at=f"gte:{created}"))
    assert {ids[2], ids[3], ids[4]} <= after
    assert gamma.ids(tag="listed", created_at="lt:2000-01-01T00:00:00Z") == []
    assert set(gamma.ids(tag="listed", updated_at="gt:2000-01-01T00:00:00Z")) == set(ids)
    assert set(gamma.ids(tag="listed", visibility="shared")) == set(ids)
    assert gamma.ids(tag="listed", visibility="private") == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "many"},
        {"limit": "-1"},
        {"sort_key": "owner"},
        {"sort_dir": "sideways"},
        {"sort": "name:up"},
        {"sort": "name", "sort_key": "size"},
        {"sort_key": ["name", "size", "id"], "sort_dir": ["asc", "desc"]},
        {"visibility": "everyone"},
        {"member_status": "maybe"},
        {"size_min": "big"},
        {"created_at": "gt:yesterday"},
        {"changes-since": "2020-01-01T00:00:00Z"},
        {"protected": "perhaps"},
        {"marker": str(uuid.uuid4())},
    ],
)
def test_list_refuses_bad_parameters(gamma: Client, params: dict[str, Any]) -> None:
    resp = gamma.call("GET", "/images", params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "400 Bad Request"


def test_list_sorting(gamma: Client, listed: list[dict[str, Any]]) -> None:
    def sizes(**params: Any) -> list[int]:
        resp = gamma.call("GET", "/images", params={"tag": "listed", **params})
        return [i["size"] for i in resp.json()["images"]]

    assert sizes(sort="size:asc") == [10, 20, 30, 40, 50]
    assert sizes(sort_key="size", sort_dir="desc") == [50, 40, 30, 20, 10]
    assert sizes(sort="disk_format:asc,size:desc") == [20, 10, 50, 40, 30]
    names = [
        i["name"] for i in gamma.call("GET", "/images", params={"tag": "listed"}).json()["images"]
    ]
    assert names == [f"list-{i}" for i in reversed(range(5))]  # newest first by default


def test_list_paging_follows_next(gamma: Client, listed: list[dict[str, Any]]) -> None:
    seen: list[str] = []
    url = "/images?tag=listed&sort=name:asc&limit=2"
    pages = 0
    while url:
        body = gamma.call("GET", url.removeprefix("/v2") if url.startswith("/v2") else url).json()
        assert body["first"] == "/v2/images?tag=listed&sort=name%3Aasc&limit=2"
        assert body["schema"] == "/v2/schemas/images"
        seen += [i["name"] for i in body["images"]]
        url = body.get("next", "")
        assert not url or url.startswith("/v2/images?")
        pages += 1
    assert seen == [f"list-{i}" for i in range(5)]
    assert pages == 3
    assert len(gamma.ids(tag="listed", limit=0)) == 0
