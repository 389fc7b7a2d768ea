"""Compute microversion negotiation over HTTP."""

from __future__ import annotations

from tests.support.cloud import Cloud

AZ = "/compute/v2.1/os-availability-zone"


def test_default_latest_and_echo(cloud: Cloud) -> None:
    token = cloud.token()
    plain = cloud.request("GET", AZ, token)
    assert plain.status_code == 200
    assert plain.headers["OpenStack-API-Version"] == "compute 2.1"
    assert plain.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert "OpenStack-API-Version" in plain.headers["Vary"]
    latest = cloud.request("GET", AZ, token, headers={"OpenStack-API-Version": "compute latest"})
    maximum = cloud.request("GET", "/compute/v2.1", token).json()["version"]["version"]
    assert latest.headers["OpenStack-API-Version"] == f"compute {maximum}"
    legacy = cloud.request("GET", AZ, token, headers={"X-OpenStack-Nova-API-Version": "2.1"})
    assert legacy.status_code == 200


def test_out_of_range_is_406_and_garbage_400(cloud: Cloud) -> None:
    token = cloud.token()
    high = cloud.request("GET", AZ, token, headers={"OpenStack-API-Version": "compute 2.999"})
    assert high.status_code == 406
    assert "Minimum is 2.1" in high.json()["computeFault"]["message"]
    low = cloud.request("GET", AZ, token, headers={"X-OpenStack-Nova-API-Version": "1.9"})
    assert low.status_code == 406
    bad = cloud.request("GET", AZ, token, headers={"OpenStack-API-Version": "compute two"})
    assert bad.status_code == 400 and "badRequest" in bad.json()
    # Another service's version in the same header is not ours to judge.
    other = cloud.request("GET", AZ, token, headers={"OpenStack-API-Version": "volume 3.99"})
    assert other.status_code == 200


def test_v20_is_listed_first_and_is_the_api_at_21(cloud: Cloud) -> None:
    """Nova lists v2.0 before v2.1 and serves it as v2.1 pinned at 2.1, with the
    project in the path."""
    root = cloud.request("GET", "/compute").json()["versions"]
    assert [(v["id"], v["status"]) for v in root] == [("v2.0", "SUPPORTED"), ("v2.1", "CURRENT")]
    v20 = cloud.request("GET", "/compute/v2/").json()["version"]
    assert v20["id"] == "v2.0" and v20["version"] == v20["min_version"] == ""
    assert v20["links"] == root[0]["links"] == [{"rel": "self", "href": f"{cloud.url}/compute/v2/"}]
    token = cloud.token()
    project_id = cloud.auth().json()["token"]["project"]["id"]
    # A field 2.55 adds stays out, whatever version the client asks for.
    flavor = cloud.request(
        "GET",
        f"/compute/v2/{project_id}/flavors/42",
        token,
        headers={"OpenStack-API-Version": "compute 2.61"},
    )
    assert flavor.status_code == 200, flavor.text
    assert flavor.json()["flavor"]["name"] == "m1.nano"
    assert "description" not in flavor.json()["flavor"]
    assert cloud.request("GET", f"/compute/v2/{project_id}/flavors/42").status_code == 401
    other = cloud.request("GET", "/compute/v2/0123456789abcdef/flavors", token)
    assert other.status_code == 400 and "project_id" in other.json()["badRequest"]["message"]
