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
