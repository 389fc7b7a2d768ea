"""Tempest's own identity v3 API tests against a real ciaostack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cloud import Cloud
from tests.support.tempest import (
    Account,
    Workspace,
    provision_account,
    remove_account,
)

pytestmark = pytest.mark.e2e

MODULES = ("test_tokens", "test_api_discovery", "test_catalog")
REGEX = r"^tempest\.api\.identity\.v3\.(" + "|".join(MODULES) + r")\."
# What this selection held in tempest 47; a newer tempest may add tests, and every
# selected test must pass whatever the version, but none of these may go missing.
KNOWN = {
    "tempest.api.identity.v3.test_api_discovery.TestApiDiscovery." + name
    for name in (
        "test_api_media_types",
        "test_api_version_resources",
        "test_api_version_statuses",
        "test_identity_v3_existence",
        "test_list_api_versions",
    )
} | {
    "tempest.api.identity.v3.test_catalog.IdentityCatalogTest.test_catalog_standardization",
    "tempest.api.identity.v3.test_tokens.TokensV3Test.test_create_token",
    "tempest.api.identity.v3.test_tokens.TokensV3Test.test_token_auth_creation_existence_deletion",
    "tempest.api.identity.v3.test_tokens.TokensV3Test.test_validate_token",
}


@pytest.fixture
def account(cloud: Cloud) -> Iterator[Account]:
    acct = provision_account(cloud)
    yield acct
    remove_account(cloud, acct)


def test_tempest_identity_v3(cloud: Cloud, account: Account, tmp_path: Path) -> None:
    workspace = Workspace.create(tmp_path, cloud, [account])
    results = workspace.run(REGEX)

    not_passed = sorted(set(results.status) - results.named("success"))
    assert not not_passed, f"{results.explain(not_passed)}\n\n(tempest log: {workspace.log_file})"
    missing = KNOWN - results.named("success")
    assert not missing, f"not selected or not run: {sorted(missing)}"
