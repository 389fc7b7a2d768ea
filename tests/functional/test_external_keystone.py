"""External Keystone mode: a second ciaostack trusts the first one's tokens through
keystonemiddleware, exactly as Nova trusts a real Keystone.

The session's `cloud` (builtin identity) is the identity provider, where a service
user with the `service` role on project `service` is created; `external` is
another API process with its own home and database whose [keystone_authtoken]
points at it. The compute checks that hold in both modes run against both.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import requests

from ciaostack.compat.nova import versions
from tests.support import identity
from tests.support.cloud import Cloud, make_bare_cloud

AZ_PATH = "/compute/v2.1/os-availability-zone"
AZ_BODY = {
    "availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]
}
CACHE_SECONDS = 1
# Every token a test hands to the external cloud; none may appear in its log.
SEEN: set[str] = set()


@pytest.fixture(scope="module")
def external(
    cloud: Cloud, database_url_factory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cloud]:
    # The service user keystonemiddleware validates tokens as, made as an operator would.
    admin = cloud.token()
    password = secrets.token_urlsafe(12)
    nova = identity.create_user(cloud, admin, password)
    [service] = cloud.request(
        "GET", "/identity/v3/projects", admin, params={"name": "service"}
    ).json()["projects"]
    role = identity.role_id(cloud, admin, "service")
    identity.grant(cloud, admin, service["id"], nova["id"], role)
    ext = make_bare_cloud(
        tmp_path_factory.mktemp("external") / "home",
        database_url_factory(),
        {
            "CIAOSTACK_IDENTITY__MODE": "external",
            "CIAOSTACK_KEYSTONE_AUTHTOKEN__AUTH_URL": f"{cloud.url}/identity",
            "CIAOSTACK_KEYSTONE_AUTHTOKEN__WWW_AUTHENTICATE_URI": f"{cloud.url}/identity",
            "CIAOSTACK_KEYSTONE_AUTHTOKEN__USERNAME": nova["name"],
            "CIAOSTACK_KEYSTONE_AUTHTOKEN__PASSWORD": password,
            "CIAOSTACK_KEYSTONE_AUTHTOKEN__PROJECT_NAME": "service",
            "CIAOSTACK_KEYSTONE_AUTHTOKEN__TOKEN_CACHE_TIME": str(CACHE_SECONDS),
            # The most verbose level is where a token would leak, if anywhere.
            "CIAOSTACK_LOG__LEVEL": "DEBUG",
        },
    )
    yield ext
    ext.stop()
    log = ext.log_path.read_text()
    assert "Traceback" not in log, log[-5000:]
    assert "Starting Keystone auth_token middleware" in log
    leaked = [t for t in SEEN if t in log]
    assert not leaked, "the external-mode API logged a token"
    assert password not in log


@pytest.fixture(params=["builtin", "external"])
def api(request: pytest.FixtureRequest, cloud: Cloud) -> Cloud:
    """The cloud whose compute API is under test, in either identity mode."""
    return cloud if request.param == "builtin" else request.getfixturevalue("external")


def _token(idp: Cloud) -> str:
    token = idp.token()
    SEEN.add(token)
    return token


def _revoke(idp: Cloud, token: str) -> None:
    resp = idp.request(
        "DELETE", "/identity/v3/auth/tokens", idp.token(), headers={"X-Subject-Token": token}
    )
    assert resp.status_code == 204


def _assert_unauthorized(resp: requests.Response, idp: Cloud) -> None:
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert list(body) == ["unauthorized"]
    assert body["unauthorized"]["code"] == 401 and body["unauthorized"]["message"]
    assert resp.headers["WWW-Authenticate"] == f'Keystone uri="{idp.url}/identity"'


def test_version_documents_need_no_token(api: Cloud) -> None:
    for path in ("/compute", "/compute/"):
        resp = requests.get(f"{api.url}{path}", timeout=10)
        assert resp.status_code == 200
        v20, v21 = resp.json()["versions"]
        assert v20["id"] == "v2.0" and v20["status"] == "SUPPORTED"
        assert v21["id"] == "v2.1" and v21["status"] == "CURRENT"
        assert v21["min_version"] == "2.1" and v21["version"] == versions.MAX_VERSION
        assert v21["updated"].endswith("Z")
        assert {"rel": "self", "href": f"{api.url}/compute/v2.1/"} in v21["links"]
    one = requests.get(f"{api.url}/compute/v2.1/", timeout=10)
    assert one.status_code == 200
    version = one.json()["version"]
    assert version["id"] == "v2.1" and version["status"] == "CURRENT"
    assert version["media-types"][0]["base"] == "application/json"


def test_token_from_the_identity_provider_is_accepted(api: Cloud, cloud: Cloud) -> None:
    token = _token(cloud)
    for _ in range(4):  # both workers
        resp = api.request("GET", AZ_PATH, token)
        assert resp.status_code == 200, resp.text
        # Other modules' nodes share this datastore: the zones are theirs; the default
        # zone is always among them.
        assert AZ_BODY["availabilityZoneInfo"][0] in resp.json()["availabilityZoneInfo"]
        assert resp.headers["x-openstack-request-id"].startswith("req-")


def test_no_token_is_401_in_novas_format(api: Cloud, cloud: Cloud) -> None:
    _assert_unauthorized(api.request("GET", AZ_PATH), cloud)


def test_garbage_token_is_401(api: Cloud, cloud: Cloud) -> None:
    garbage = "gAAAAA" + secrets.token_urlsafe(150)
    SEEN.add(garbage)
    _assert_unauthorized(api.request("GET", AZ_PATH, garbage), cloud)
    _assert_unauthorized(api.request("GET", AZ_PATH, "x"), cloud)


def test_revoked_token_is_401(api: Cloud, cloud: Cloud) -> None:
    token = _token(cloud)
    _revoke(cloud, token)
    for _ in range(4):
        _assert_unauthorized(api.request("GET", AZ_PATH, token), cloud)


@pytest.mark.parametrize(
    "forged",
    [
        {
            "X-Identity-Status": "Confirmed",
            "X-Roles": "admin",
            "X-User-Id": "u",
            "X-Project-Id": "p",
        },
        {"X_Identity_Status": "Confirmed", "X_Roles": "admin", "X_User_Id": "u"},
    ],
    ids=["dashes", "underscores"],
)
def test_forged_identity_headers_are_ignored(api: Cloud, cloud: Cloud, forged: dict) -> None:
    _assert_unauthorized(api.request("GET", AZ_PATH, headers=forged), cloud)
    garbage = "gAAAAA" + secrets.token_urlsafe(150)
    SEEN.add(garbage)
    _assert_unauthorized(api.request("GET", AZ_PATH, garbage, headers=forged), cloud)


def test_unknown_compute_path_is_404_in_novas_format(api: Cloud, cloud: Cloud) -> None:
    resp = api.request("GET", "/compute/v2.1/no-such-thing", _token(cloud))
    assert resp.status_code == 404
    assert resp.json()["itemNotFound"]["code"] == 404


def test_external_mode_serves_no_identity(external: Cloud, cloud: Cloud) -> None:
    token = _token(cloud)
    for path in ("/identity", "/identity/v3", "/identity/v3/auth/tokens"):
        assert external.request("GET", path, token).status_code == 404
    resp = external.request("POST", "/identity/v3/auth/tokens", json={"auth": {}})
    assert resp.status_code in (404, 405)


def test_revocation_reaches_a_cached_token_after_the_cache_time(
    external: Cloud, cloud: Cloud
) -> None:
    token = _token(cloud)
    for _ in range(4):  # cache the token in both workers
        assert external.request("GET", AZ_PATH, token).status_code == 200
    _revoke(cloud, token)
    time.sleep(CACHE_SECONDS + 0.5)
    for _ in range(4):
        _assert_unauthorized(external.request("GET", AZ_PATH, token), cloud)


def test_every_service_prefix_goes_through_auth_token(external: Cloud, cloud: Cloud) -> None:
    """The image API is served too; a forged identity gets nowhere there either."""
    forged = {"X-Identity-Status": "Confirmed", "X-Roles": "admin", "X-User-Id": "u"}
    resp = external.request("GET", "/image/v2/images", headers=forged)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == f'Keystone uri="{cloud.url}/identity"'
    assert external.request("GET", "/image/v2/images", _token(cloud)).status_code == 200
