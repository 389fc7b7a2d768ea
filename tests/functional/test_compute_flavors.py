"""Flavors over real HTTP: defaults, create/delete, private flavors and access, extra
specs, paging and filters, and each microversion's shape (tempest's schemas)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from ciaostack.core.compute import BOOTSTRAP_SEEDS
from ciaostack.core.db.migrate import upgrade
from ciaostack.core.db.models import Flavor
from ciaostack.core.db.session import Database
from ciaostack.core.identity.bootstrap import bootstrap
from tests.support.cloud import Cloud
from tests.support.compute_api import call, conforms, fault, needs
from tests.support.identity import Member, new_member, unique


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> str:
    return cloud.token()


@pytest.fixture(scope="module")
def member(cloud: Cloud, admin: str) -> Member:
    return new_member(cloud, admin)


@pytest.fixture(scope="module")
def member_token(cloud: Cloud, member: Member) -> str:
    return member.token(cloud)


def create(cloud: Cloud, admin: str, mv: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("flavor"), "ram": 256, "vcpus": 1, "disk": 1, **fields}
    resp = call(cloud, "POST", "/flavors", admin, mv, json={"flavor": body})
    assert resp.status_code == 200, resp.text
    return resp.json()["flavor"]


def names(cloud: Cloud, token: str, **params: str) -> list[str]:
    resp = call(cloud, "GET", "/flavors/detail", token, params=params)
    assert resp.status_code == 200, resp.text
    return [f["name"] for f in resp.json()["flavors"]]


def test_bootstrap_made_the_default_flavors(cloud: Cloud, member_token: str) -> None:
    listed = conforms(
        call(cloud, "GET", "/flavors", member_token), "2.1", "flavors", "list_flavors"
    )
    by_id = {f["id"]: f["name"] for f in listed["flavors"]}
    assert by_id["1"] == "m1.tiny" and by_id["5"] == "m1.xlarge" and by_id["42"] == "m1.nano"
    detail = call(cloud, "GET", "/flavors/detail", member_token)
    body = conforms(detail, "2.1", "flavors", "list_flavors_details")
    nano = next(f for f in body["flavors"] if f["id"] == "42")
    assert (nano["ram"], nano["vcpus"], nano["disk"]) == (128, 1, 1)
    # No swap shows as "" before 2.75; rxtx_factor and the extension fields are there.
    assert nano["swap"] == "" and nano["rxtx_factor"] == 1.0
    assert nano["OS-FLV-EXT-DATA:ephemeral"] == 0 and nano["OS-FLV-DISABLED:disabled"] is False
    assert nano["os-flavor-access:is_public"] is True
    links = {link["rel"]: link["href"] for link in nano["links"]}
    assert links["self"] == f"{cloud.url}/compute/v2.1/flavors/42"
    assert links["bookmark"] == f"{cloud.url}/compute/flavors/42"
    # Nova's default order: by flavor id, as strings.
    ids = [f["id"] for f in body["flavors"]]
    assert ids == sorted(ids)


def test_bootstrap_seeds_the_flavors_once(database_url_factory) -> None:  # noqa: ANN001
    """A second bootstrap (as every `ciaostack up` runs) adds nothing and brings back
    nothing an operator deleted."""
    url = database_url_factory()
    upgrade(url)
    db = Database(url)
    try:

        def run() -> None:
            bootstrap(db, "pw", "http://127.0.0.1:5000", "RegionOne", 4, seeds=BOOTSTRAP_SEEDS)

        def flavor_ids() -> list[str]:
            with db.session(readonly=True) as session:
                return sorted(session.scalars(select(Flavor.id)))

        run()
        assert flavor_ids() == ["1", "2", "3", "4", "42", "5"]
        with db.session() as session:
            session.delete(session.get(Flavor, "42"))
        run()
        assert flavor_ids() == ["1", "2", "3", "4", "5"]
    finally:
        db.dispose()


def test_show_and_missing(cloud: Cloud, member_token: str) -> None:
    shown = call(cloud, "GET", "/flavors/1", member_token)
    flavor = conforms(shown, "2.1", "flavors", "create_update_get_flavor_details")["flavor"]
    assert flavor["name"] == "m1.tiny" and "description" not in flavor
    missing = call(cloud, "GET", "/flavors/no-such-flavor", member_token)
    assert "could not be found" in fault(missing, 404)
    assert "itemNotFound" in missing.json()


def test_create_with_chosen_and_generated_ids(cloud: Cloud, admin: str) -> None:
    numbered = create(cloud, admin, id=uuid.uuid4().int % 10**9 + 1000, ram="1024")
    assert numbered["id"].isdigit() and numbered["ram"] == 1024
    chosen = str(uuid.uuid4())
    assert create(cloud, admin, id=chosen)["id"] == chosen
    generated = create(cloud, admin, id=None)
    assert str(uuid.UUID(generated["id"])) == generated["id"]
    full = create(
        cloud,
        admin,
        **{"OS-FLV-EXT-DATA:ephemeral": 10, "swap": 1024, "rxtx_factor": 2},
    )
    assert full["swap"] == 1024 and full["OS-FLV-EXT-DATA:ephemeral"] == 10
    assert full["rxtx_factor"] == 2.0
    shown = call(cloud, "GET", f"/flavors/{full['id']}", admin)
    assert conforms(shown, "2.1", "flavors", "create_update_get_flavor_details")["flavor"] == full


def test_create_conflicts_and_bad_input(cloud: Cloud, admin: str, member_token: str) -> None:
    flavor = create(cloud, admin)
    same_name = {"name": flavor["name"], "ram": 64, "vcpus": 1, "disk": 0}
    resp = call(cloud, "POST", "/flavors", admin, json={"flavor": same_name})
    assert f"Flavor with name {flavor['name']} already exists." == fault(resp, 409)
    same_id = {"name": unique("flavor"), "ram": 64, "vcpus": 1, "disk": 0, "id": flavor["id"]}
    resp = call(cloud, "POST", "/flavors", admin, json={"flavor": same_id})
    assert "conflictingRequest" in resp.json() and "ID" in fault(resp, 409)

    good = {"name": unique("flavor"), "ram": 64, "vcpus": 1, "disk": 0}
    refused = call(cloud, "POST", "/flavors", member_token, json={"flavor": good})
    assert "os-flavor-manage:create" in fault(refused, 403)
    for bad in (
        {"ram": 0},
        {"vcpus": "-1"},
        {"disk": -1},
        {"ram": "lots"},
        {"name": " padded"},
        {"name": ""},
        {"id": "has/slash"},
        {"id": " x"},
        {"rxtx_factor": 0},
        {"os-flavor-access:is_public": "maybe"},
        {"description": "only from 2.55"},
        {"unknown": 1},
    ):
        resp = call(cloud, "POST", "/flavors", admin, json={"flavor": {**good, **bad}})
        fault(resp, 400)
    missing_disk = {k: v for k, v in good.items() if k != "disk"}
    fault(call(cloud, "POST", "/flavors", admin, json={"flavor": missing_disk}), 400)
    fault(call(cloud, "POST", "/flavors", admin, data="{not json"), 400)


def test_delete(cloud: Cloud, admin: str, member_token: str) -> None:
    flavor = create(cloud, admin)
    path = f"/flavors/{flavor['id']}"
    fault(call(cloud, "DELETE", path, member_token), 403)
    deleted = call(cloud, "DELETE", path, admin)
    assert deleted.status_code == 202 and not deleted.content
    fault(call(cloud, "GET", path, admin), 404)
    fault(call(cloud, "DELETE", path, admin), 404)


def test_private_flavors_and_access(
    cloud: Cloud, admin: str, member: Member, member_token: str
) -> None:
    private = create(cloud, admin, **{"os-flavor-access:is_public": "False"})
    path = f"/flavors/{private['id']}"
    assert private["os-flavor-access:is_public"] is False
    # Hidden from the member, and from the admin's default list (no access either).
    assert private["name"] not in names(cloud, member_token)
    fault(call(cloud, "GET", path, member_token), 404)
    assert private["name"] not in names(cloud, admin)
    for value in ("f", "false", "no", "0"):
        assert private["name"] in names(cloud, admin, is_public=value)
    assert private["name"] in names(cloud, admin, is_public="None")
    assert "m1.tiny" not in names(cloud, admin, is_public="false")
    for value in ("t", "true", "yes", "1"):
        assert "m1.tiny" in names(cloud, admin, is_public=value)
    assert "Invalid is_public filter" in fault(
        call(cloud, "GET", "/flavors", admin, params={"is_public": "maybe"}), 400
    )
    # A member's is_public is ignored: still only what they may see.
    assert private["name"] not in names(cloud, member_token, is_public="None")

    access = f"{path}/os-flavor-access"
    assert conforms(
        call(cloud, "GET", access, admin), "2.1", "flavors_access", "add_remove_list_flavor_access"
    ) == {"flavor_access": []}
    add = {"addTenantAccess": {"tenant": member.project_id}}
    fault(call(cloud, "POST", f"{path}/action", member_token, json=add), 403)
    added = call(cloud, "POST", f"{path}/action", admin, json=add)
    expected = {"flavor_access": [{"flavor_id": private["id"], "tenant_id": member.project_id}]}
    assert conforms(added, "2.1", "flavors_access", "add_remove_list_flavor_access") == expected
    assert "already exists" in fault(call(cloud, "POST", f"{path}/action", admin, json=add), 409)
    assert call(cloud, "GET", access, admin).json() == expected
    fault(call(cloud, "GET", access, member_token), 403)
    # Now the member sees and may use it.
    assert private["name"] in names(cloud, member_token)
    assert call(cloud, "GET", path, member_token).json()["flavor"]["id"] == private["id"]

    remove = {"removeTenantAccess": {"tenant": member.project_id}}
    removed = call(cloud, "POST", f"{path}/action", admin, json=remove)
    assert removed.status_code == 200 and removed.json() == {"flavor_access": []}
    assert "Flavor access not found" in fault(
        call(cloud, "POST", f"{path}/action", admin, json=remove), 404
    )
    fault(call(cloud, "GET", path, member_token), 404)

    unknown = {"addTenantAccess": {"tenant": "no-such-project"}}
    assert "not a valid project" in fault(
        call(cloud, "POST", f"{path}/action", admin, json=unknown), 400
    )
    fault(call(cloud, "POST", f"{path}/action", admin, json={"dance": {}}), 400)
    fault(call(cloud, "POST", f"{path}/action", admin, json={"addTenantAccess": {}}), 400)
    public_access = call(cloud, "GET", "/flavors/1/os-flavor-access", admin)
    assert "public flavors" in fault(public_access, 404)


def test_adding_access_to_a_public_flavor(cloud: Cloud, admin: str, member: Member) -> None:
    """Allowed (and pointless) before 2.7, a conflict since."""
    flavor = create(cloud, admin)
    add = {"addTenantAccess": {"tenant": member.project_id}}
    path = f"/flavors/{flavor['id']}/action"
    assert call(cloud, "POST", path, admin, json=add).status_code == 200
    needs(cloud, "2.7")
    fault(call(cloud, "POST", path, admin, "2.7", json=add), 409)


def test_extra_specs(cloud: Cloud, admin: str, member_token: str) -> None:
    flavor = create(cloud, admin)
    specs = f"/flavors/{flavor['id']}/os-extra_specs"
    assert call(cloud, "GET", specs, member_token).json() == {"extra_specs": {}}
    body = {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:vif_inbound_peak": 100}}
    fault(call(cloud, "POST", specs, member_token, json=body), 403)
    created = call(cloud, "POST", specs, admin, json=body)
    stored = {"hw:cpu_policy": "dedicated", "quota:vif_inbound_peak": "100"}
    assert conforms(created, "2.1", "flavors_extra_specs", "set_get_flavor_extra_specs") == {
        "extra_specs": stored
    }
    listed = call(cloud, "GET", specs, member_token)
    assert conforms(listed, "2.1", "flavors_extra_specs", "set_get_flavor_extra_specs") == {
        "extra_specs": stored
    }
    key = f"{specs}/hw:cpu_policy"
    shown = call(cloud, "GET", key, member_token)
    assert conforms(shown, "2.1", "flavors_extra_specs", "set_get_flavor_extra_specs_key") == {
        "hw:cpu_policy": "dedicated"
    }
    updated = call(cloud, "PUT", key, admin, json={"hw:cpu_policy": "shared"})
    assert updated.status_code == 200 and updated.json() == {"hw:cpu_policy": "shared"}
    assert "mismatch" in fault(call(cloud, "PUT", key, admin, json={"other": "x"}), 400)
    two = {"hw:cpu_policy": "a", "b": "c"}
    fault(call(cloud, "PUT", key, admin, json=two), 400)
    fault(call(cloud, "PUT", key, member_token, json={"hw:cpu_policy": "x"}), 403)
    fault(call(cloud, "POST", specs, admin, json={"extra_specs": {"bad/key": "x"}}), 400)
    fault(call(cloud, "POST", specs, admin, json={"extra_specs": {"k": "v" * 256}}), 400)
    fault(call(cloud, "POST", specs, admin, json={"extra_specs": {"k": 10**300}}), 400)
    fault(call(cloud, "DELETE", key, member_token), 403)
    deleted = call(cloud, "DELETE", key, admin)
    assert deleted.status_code == 200 and not deleted.content
    assert "has no extra specs with key" in fault(call(cloud, "DELETE", key, admin), 404)
    fault(call(cloud, "GET", key, admin), 404)
    assert call(cloud, "GET", specs, admin).json() == {
        "extra_specs": {"quota:vif_inbound_peak": "100"}
    }
    fault(call(cloud, "GET", "/flavors/no-such-flavor/os-extra_specs", admin), 404)


def test_paging_filters_and_sorting(cloud: Cloud, admin: str) -> None:
    first = call(cloud, "GET", "/flavors", admin, params={"limit": 2})
    page = conforms(first, "2.1", "flavors", "list_flavors")
    assert len(page["flavors"]) == 2
    [link] = page["flavors_links"]
    assert link["rel"] == "next" and f"marker={page['flavors'][-1]['id']}" in link["href"]
    assert link["href"].startswith(f"{cloud.url}/compute/v2.1/flavors?")
    following = call(
        cloud, "GET", "/flavors", admin, params={"limit": 2, "marker": page["flavors"][-1]["id"]}
    ).json()["flavors"]
    everything = call(cloud, "GET", "/flavors", admin).json()
    all_ids = [f["id"] for f in everything["flavors"]]
    assert "flavors_links" not in everything
    assert [f["id"] for f in page["flavors"] + following] == all_ids[:4]
    detail = call(cloud, "GET", "/flavors/detail", admin, params={"limit": 1}).json()
    assert "/compute/v2.1/flavors/detail?" in detail["flavors_links"][0]["href"]
    assert "marker [nope] not found" in fault(
        call(cloud, "GET", "/flavors", admin, params={"marker": "nope"}), 400
    )
    fault(call(cloud, "GET", "/flavors", admin, params={"limit": "-1"}), 400)

    big = call(cloud, "GET", "/flavors/detail", admin, params={"minRam": 8192}).json()["flavors"]
    assert big and all(f["ram"] >= 8192 for f in big) and "m1.large" in {f["name"] for f in big}
    roomy = call(cloud, "GET", "/flavors/detail", admin, params={"minDisk": 80}).json()["flavors"]
    assert roomy and all(f["disk"] >= 80 for f in roomy)
    assert "Invalid minRam filter" in fault(
        call(cloud, "GET", "/flavors", admin, params={"minRam": "x"}), 400
    )
    by_ram = call(
        cloud, "GET", "/flavors/detail", admin, params={"sort_key": "memory_mb", "sort_dir": "desc"}
    ).json()["flavors"]
    rams = [f["ram"] for f in by_ram]
    assert rams == sorted(rams, reverse=True)
    fault(call(cloud, "GET", "/flavors", admin, params={"sort_key": "colour"}), 400)
    fault(call(cloud, "GET", "/flavors", admin, params={"sort_dir": "up"}), 400)


def test_description_from_2_55(cloud: Cloud, admin: str, member_token: str) -> None:
    needs(cloud, "2.55")
    flavor = create(cloud, admin, "2.55", description="for tests")
    assert flavor["description"] == "for tests"
    path = f"/flavors/{flavor['id']}"
    listed = call(cloud, "GET", "/flavors", member_token, "2.55")
    assert conforms(listed, "2.55", "flavors", "list_flavors")
    detail = call(cloud, "GET", "/flavors/detail", member_token, "2.55")
    assert conforms(detail, "2.55", "flavors", "list_flavors_details")
    updated = call(cloud, "PUT", path, admin, "2.55", json={"flavor": {"description": "new"}})
    body = conforms(updated, "2.55", "flavors", "create_update_get_flavor_details")
    assert body["flavor"]["description"] == "new"
    assert call(cloud, "GET", path, admin, "2.55").json()["flavor"]["description"] == "new"
    fault(
        call(cloud, "PUT", path, member_token, "2.55", json={"flavor": {"description": "x"}}), 403
    )
    fault(call(cloud, "PUT", path, admin, "2.55", json={"flavor": {"name": "x"}}), 400)
    fault(
        call(cloud, "PUT", "/flavors/nope", admin, "2.55", json={"flavor": {"description": ""}}),
        404,
    )
    # Not a route before 2.55.
    fault(call(cloud, "PUT", path, admin, json={"flavor": {"description": "x"}}), 404)


def test_extra_specs_in_flavors_from_2_61(cloud: Cloud, admin: str, member_token: str) -> None:
    needs(cloud, "2.61")
    flavor = create(cloud, admin, "2.61")
    assert flavor["extra_specs"] == {}
    specs = {"extra_specs": {"hw:mem_page_size": "large"}}
    call(cloud, "POST", f"/flavors/{flavor['id']}/os-extra_specs", admin, json=specs)
    shown = call(cloud, "GET", f"/flavors/{flavor['id']}", member_token, "2.61")
    body = conforms(shown, "2.61", "flavors", "create_update_get_flavor_details")
    assert body["flavor"]["extra_specs"] == {"hw:mem_page_size": "large"}
    detail = call(cloud, "GET", "/flavors/detail", member_token, "2.61")
    listed = conforms(detail, "2.61", "flavors", "list_flavors_details")["flavors"]
    assert all("extra_specs" in f for f in listed)
    # Before 2.61 they are not part of a flavor.
    assert (
        "extra_specs"
        not in call(cloud, "GET", f"/flavors/{flavor['id']}", admin, "2.60").json()["flavor"]
    )
