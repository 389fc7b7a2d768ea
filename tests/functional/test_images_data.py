"""Glance v2 image data over real HTTP: uploads, downloads, ranges, broken uploads, limits,
quotas, staging and the interoperable import (glance-direct and web-download)."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.cloud import Cloud, make_cloud
from tests.support.core import wait_until
from tests.support.identity import new_member

OCTET = {"Content-Type": "application/octet-stream"}
MIB = 1 << 20


class Images:
    """The admin's token against one cloud's image API."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.token = cloud.token()

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.cloud.request(method, f"/image/v2{path}", self.token, **kwargs)

    def create(self, **body: Any) -> str:
        body = {"disk_format": "raw", "container_format": "bare", **body}
        resp = self.call("POST", "/images", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    def show(self, image_id: str) -> dict[str, Any]:
        resp = self.call("GET", f"/images/{image_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def upload(self, image_id: str, data: Any, **headers: str) -> requests.Response:
        return self.call(
            "PUT", f"/images/{image_id}/file", data=data, headers={**OCTET, **headers}, timeout=120
        )

    def wait_status(self, image_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            image = self.show(image_id)
            if image["status"] in statuses:
                return image
            assert time.monotonic() < deadline, f"still {image['status']}, not {statuses}"
            time.sleep(0.1)

    def store_files(self, image_id: str) -> list[Path]:
        """Whatever the file store holds for this image, finished or not."""
        root = self.cloud.home / "images"
        return [p for p in root.rglob(f"*{image_id}*") if p.is_file()]


@pytest.fixture(scope="module")
def api(cloud: Cloud) -> Images:
    return Images(cloud)


def md5(data: bytes) -> str:
    """The `checksum` Glance clients compare."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    """A generator body: requests sends it with chunked transfer encoding."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


# -- upload and download ------------------------------------------------------------------


def test_upload_computes_hashes_and_download_returns_the_bytes(api: Images) -> None:
    data = os.urandom(3 * MIB + 123)
    iid = api.create(name="upload")
    resp = api.upload(iid, data)
    assert resp.status_code == 204 and resp.content == b""
    image = api.show(iid)
    assert image["status"] == "active" and image["size"] == len(data)
    assert image["checksum"] == md5(data)
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert image["stores"] == "file"
    got = api.call("GET", f"/images/{iid}/file")
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-MD5"] == image["checksum"]
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert int(got.headers["Content-Length"]) == len(data)
    assert len(api.store_files(iid)) == 1
    assert api.call("DELETE", f"/images/{iid}").status_code == 204
    assert api.store_files(iid) == []


def test_chunked_upload(api: Images) -> None:
    data = os.urandom(MIB + 7)
    iid = api.create()
    assert api.upload(iid, chunks(data)).status_code == 204
    image = api.show(iid)
    assert image["size"] == len(data) and image["checksum"] == md5(data)
    assert api.call("GET", f"/images/{iid}/file").content == data
    api.call("DELETE", f"/images/{iid}")


def test_chunked_upload_shorter_than_declared_size(api: Images) -> None:
    iid = api.create()
    resp = api.upload(iid, chunks(b"x" * 1000), **{"X-OpenStack-Image-Size": "2000"})
    assert resp.status_code == 400
    assert api.show(iid)["status"] == "queued" and api.store_files(iid) == []
    api.call("DELETE", f"/images/{iid}")


def test_empty_image(api: Images) -> None:
    iid = api.create()
    queued = api.call("GET", f"/images/{iid}/file")
    assert queued.status_code == 204 and queued.content == b""
    assert api.upload(iid, b"").status_code == 204
    image = api.show(iid)
    assert image["status"] == "active" and image["size"] == 0
    assert image["checksum"] == md5(b"")
    empty = api.call("GET", f"/images/{iid}/file")
    assert empty.status_code == 200 and empty.content == b""
    api.call("DELETE", f"/images/{iid}")


def test_range_requests(api: Images) -> None:
    data = bytes(range(256)) * 40
    iid = api.create()
    api.upload(iid, data)
    for header, first, last in (
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, len(data) - 1),
        ("bytes=-16", len(data) - 16, len(data) - 1),
        ("bytes=10000-99999", 10000, len(data) - 1),
    ):
        resp = api.call("GET", f"/images/{iid}/file", headers={"Range": header})
        assert resp.status_code == 206, header
        assert resp.content == data[first : last + 1]
        assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert "Content-MD5" not in resp.headers
    beyond = api.call("GET", f"/images/{iid}/file", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    api.call("DELETE", f"/images/{iid}")


def test_upload_refusals(api: Images) -> None:
    iid = api.create()
    assert api.upload(iid, b"first").status_code == 204
    again = api.upload(iid, b"second")
    assert again.status_code == 409 and again.json()["code"] == "409 Conflict"
    assert api.call("GET", f"/images/{iid}/file").content == b"first"
    api.call("DELETE", f"/images/{iid}")

    no_formats = api.call("POST", "/images", json={"name": "bare"}).json()["id"]
    resp = api.upload(no_formats, b"data")
    assert resp.status_code == 400 and "disk_format" in resp.json()["message"]
    assert api.show(no_formats)["status"] == "queued"
    wrong_type = api.call(
        "PUT", f"/images/{no_formats}/file", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    bad_size = api.upload(no_formats, b"x", **{"X-OpenStack-Image-Size": "lots"})
    assert bad_size.status_code == 400
    api.call("DELETE", f"/images/{no_formats}")


def _start_upload(cloud: Cloud, token: str, image_id: str, head_extra: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", cloud.port))
    head = (
        f"PUT /image/v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Auth-Token: {token}\r\nContent-Type: application/octet-stream\r\n{head_extra}\r\n"
    )
    sock.sendall(head.encode())
    return sock


@pytest.mark.parametrize("encoding", ["length", "chunked"])
def test_interrupted_upload_goes_back_to_queued(api: Images, encoding: str) -> None:
    """The client sends part of the body and disconnects: the image returns to queued,
    the store keeps nothing, and a new upload then works."""
    iid = api.create(name=f"interrupted-{encoding}")
    part = b"z" * (4 * MIB)
    if encoding == "length":
        sock = _start_upload(api.cloud, api.token, iid, f"Content-Length: {16 * MIB}\r\n")
        sock.sendall(part)
    else:
        sock = _start_upload(api.cloud, api.token, iid, "Transfer-Encoding: chunked\r\n")
        sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n" + b"%x\r\n" % MIB + b"z" * 1000)
    api.wait_status(iid, "saving")
    sock.close()
    image = api.wait_status(iid, "queued")
    assert image["size"] is None and image["checksum"] is None
    deadline = time.monotonic() + 10
    while api.store_files(iid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.store_files(iid) == []
    assert api.upload(iid, b"complete").status_code == 204
    assert api.call("GET", f"/images/{iid}/file").content == b"complete"
    api.call("DELETE", f"/images/{iid}")


def test_deleting_during_an_upload_removes_the_data(api: Images) -> None:
    iid = api.create()
    sock = _start_upload(api.cloud, api.token, iid, f"Content-Length: {2 * MIB}\r\n")
    sock.sendall(b"a" * MIB)
    api.wait_status(iid, "saving")
    assert api.call("DELETE", f"/images/{iid}").status_code == 204
    sock.sendall(b"a" * MIB)
    reply = sock.recv(4096).decode()
    sock.close()
    assert reply.startswith("HTTP/1.1 410"), reply
    assert api.store_files(iid) == []


# -- stage and import -------------------------------------------------------------------------


def test_stage_then_glance_direct_import(api: Images) -> None:
    data = os.urandom(MIB // 2)
    iid = api.create(name="staged")
    early = api.call("POST", f"/images/{iid}/import", json={"method": {"name": "glance-direct"}})
    assert early.status_code == 409
    staged = api.call("PUT", f"/images/{iid}/stage", data=data, headers=OCTET)
    assert staged.status_code == 204
    image = api.show(iid)
    assert image["status"] == "uploading" and image["size"] == len(data)
    assert api.call("GET", f"/images/{iid}/file").status_code == 204
    assert api.call("PUT", f"/images/{iid}/stage", data=data, headers=OCTET).status_code == 409
    unknown = api.call("POST", f"/images/{iid}/import", json={"method": {"name": "copy-image"}})
    assert unknown.status_code == 400
    assert api.call("POST", f"/images/{iid}/import", json={"method": {}}).status_code == 400
    bad_store = api.call(
        "POST",
        f"/images/{iid}/import",
        json={"method": {"name": "glance-direct"}, "stores": ["ceph"]},
    )
    assert bad_store.status_code == 409
    done = api.call(
        "POST",
        f"/images/{iid}/import",
        json={"method": {"name": "glance-direct"}, "stores": ["file"]},
    )
    assert done.status_code == 202, done.text
    image = api.wait_status(iid, "active")
    assert image["checksum"] == md5(data)
    assert api.call("GET", f"/images/{iid}/file").content == data
    again = api.call("POST", f"/images/{iid}/import", json={"method": {"name": "glance-direct"}})
    assert again.status_code == 409
    [task] = tasks_of(api, iid)
    assert task["type"] == "api_image_import" and task["status"] == "success"
    assert task["image_id"] == iid and task["result"] == {"image_id": iid}
    assert task["request_id"] == done.headers["x-openstack-request-id"]
    assert task["input"]["import_req"]["method"] == {"name": "glance-direct"}
    assert task["expires_at"] > task["created_at"] and task["message"] == ""
    api.call("DELETE", f"/images/{iid}")
    assert api.store_files(iid) == []
    assert api.call("GET", f"/images/{iid}/tasks").status_code == 404


def tasks_of(api: Images, image_id: str) -> list[dict[str, Any]]:
    resp = api.call("GET", f"/images/{image_id}/tasks")
    assert resp.status_code == 200, resp.text
    return resp.json()["tasks"]


def test_an_uploaded_image_has_no_tasks_and_others_private_images_none_to_show(
    api: Images,
) -> None:
    iid = api.create(name="uploaded")
    assert api.upload(iid, b"data").status_code == 204
    assert tasks_of(api, iid) == []
    member = new_member(api.cloud, api.token)
    hidden = api.cloud.request("GET", f"/image/v2/images/{iid}/tasks", member.token(api.cloud))
    assert hidden.status_code == 404  # the admin project's private image
    assert api.call("GET", f"/images/{uuid.uuid4()}/tasks").status_code == 404
    api.call("DELETE", f"/images/{iid}")


def test_web_download_is_off_by_default(api: Images) -> None:
    methods = api.call("GET", "/info/import").json()["import-methods"]["value"]
    assert methods == ["glance-direct"]
    iid = api.create()
    resp = api.call(
        "POST",
        f"/images/{iid}/import",
        json={"method": {"name": "web-download", "uri": "http://127.0.0.1/x"}},
    )
    assert resp.status_code == 400
    api.call("DELETE", f"/images/{iid}")


# -- a cloud with small limits and an allowed download site -----------------------------------


class _Site(http.server.BaseHTTPRequestHandler):
    """/allowed/small (100 KiB), /allowed/big (2 MiB), /allowed/hop (redirects outside)."""

    small = os.urandom(100 * 1024)
    big = os.urandom(2 * MIB)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/allowed/hop":
            self.send_response(302)
            self.send_header("Location", "/elsewhere/small")
            self.end_headers()
            return
        body = {"/allowed/small": self.small, "/elsewhere/small": self.small}.get(self.path)
        if self.path == "/allowed/big":
            body = self.big
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, database_url_factory, site: str
) -> Iterator[Images]:  # noqa: ANN001
    cloud = make_cloud(
        tmp_path_factory.mktemp("limited") / "home",
        database_url_factory(),
        {
            "CIAOSTACK_IMAGE__MAX_IMAGE_SIZE": str(MIB),
            "CIAOSTACK_IMAGE__QUOTA_TOTAL_SIZE": str(2 * MIB + MIB // 2),
            "CIAOSTACK_IMAGE__QUOTA_IMAGES": "4",
            "CIAOSTACK_IMAGE__WEB_DOWNLOAD_ALLOW": f"{site}/allowed/",
        },
    )
    yield Images(cloud)
    cloud.stop()
    log = cloud.log_path.read_text()
    assert "Traceback" not in log, log[-5000:]


def _clear(api: Images) -> None:
    for image in api.call("GET", "/images").json()["images"]:
        api.call("DELETE", f"/images/{image['id']}")


def test_image_larger_than_the_maximum_is_refused(limited: Images) -> None:
    _clear(limited)
    iid = limited.create()
    declared = limited.upload(iid, b"x" * (MIB + 1))
    assert declared.status_code == 413 and declared.json()["code"].startswith("413")
    streamed = limited.upload(iid, chunks(b"x" * (MIB + 1)))
    assert streamed.status_code == 413
    assert limited.show(iid)["status"] == "queued" and limited.store_files(iid) == []
    assert limited.upload(iid, b"x" * MIB).status_code == 204


def test_project_quotas(limited: Images) -> None:
    _clear(limited)
    first, second, third = (limited.create() for _ in range(3))
    assert limited.upload(first, b"1" * MIB).status_code == 204
    assert limited.upload(second, b"2" * MIB).status_code == 204
    over = limited.upload(third, chunks(b"3" * MIB))
    assert over.status_code == 413 and "quota" in over.json()["message"]
    assert limited.show(third)["status"] == "queued" and limited.store_files(third) == []
    assert limited.upload(third, b"3" * (MIB // 2)).status_code == 204
    limited.create()
    too_many = limited.call("POST", "/images", json={"name": "fifth"})
    assert too_many.status_code == 413
    limited.call("DELETE", f"/images/{first}")
    assert limited.call("POST", "/images", json={"name": "fifth"}).status_code == 201
    _clear(limited)


def _import(api: Images, image_id: str, uri: str) -> requests.Response:
    return api.call(
        "POST",
        f"/images/{image_id}/import",
        json={"method": {"name": "web-download", "uri": uri}},
    )


def test_web_download_from_an_allowed_site(limited: Images, site: str) -> None:
    _clear(limited)
    methods = limited.call("GET", "/info/import").json()["import-methods"]["value"]
    assert methods == ["glance-direct", "web-download"]
    iid = limited.create(name="fetched")
    assert _import(limited, iid, f"{site}/allowed/small").status_code == 202
    image = limited.wait_status(iid, "active")
    assert image["checksum"] == md5(_Site.small)
    assert image["size"] == len(_Site.small)
    assert limited.call("GET", f"/images/{iid}/file").content == _Site.small
    assert _import(limited, iid, f"{site}/allowed/small").status_code == 409
    [task] = tasks_of(limited, iid)
    assert task["status"] == "success" and task["input"]["import_req"]["method"] == {
        "name": "web-download",
        "uri": f"{site}/allowed/small",
    }
    limited.call("DELETE", f"/images/{iid}")


@pytest.mark.parametrize(
    "uri",
    [
        "{site}/elsewhere/small",
        "{site}/allowed/../elsewhere/small",
        "{site}/allowedx/small",
        "http://user:pw@127.0.0.1/allowed/small",
        "file:///etc/passwd",
        "http://does-not.exist/no/possible/way",
    ],
)
def test_web_download_refuses_urls_outside_the_allow_list(
    limited: Images, site: str, uri: str
) -> None:
    iid = limited.create()
    resp = _import(limited, iid, uri.format(site=site))
    assert resp.status_code == 400
    assert "does not pass filtering" in resp.json()["message"]
    assert limited.show(iid)["status"] == "queued"
    limited.call("DELETE", f"/images/{iid}")


@pytest.mark.parametrize("path", ["/allowed/hop", "/allowed/missing", "/allowed/big"])
def test_failed_web_download_returns_to_queued(limited: Images, site: str, path: str) -> None:
    """A redirect outside the list, a 404 and an image over the size limit all fail
    in the background: the image is queued again and says so."""
    iid = limited.create()
    assert _import(limited, iid, f"{site}{path}").status_code == 202
    deadline = time.monotonic() + 20
    while "os_glance_failed_import" not in (image := limited.show(iid)):
        assert time.monotonic() < deadline, image
        time.sleep(0.1)
    assert image["status"] == "queued" and image["os_glance_failed_import"] == "file"
    assert limited.store_files(iid) == []
    wait_until(
        lambda: tasks_of(limited, iid)[0]["status"] != "processing", timeout=10, what="the task"
    )
    [task] = tasks_of(limited, iid)
    assert task["status"] == "failure" and task["message"] and task["result"] is None
    limited.call("DELETE", f"/images/{iid}")
