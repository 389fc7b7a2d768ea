"""Policy defaults in code and an operator file on top."""

from __future__ import annotations

import yaml

from ciaostack.core.policy import Policy, all_rules, defaults_yaml


def test_defaults_keep_members_to_themselves() -> None:
    policy = Policy()
    member = {"user_id": "u1", "project_id": "p1", "roles": ["member", "reader"]}
    admin = {"user_id": "a", "project_id": "p0", "roles": ["admin", "member", "reader"]}
    assert policy.check("identity:get_user", {"user_id": "u1"}, member)
    assert not policy.check("identity:get_user", {"user_id": "u2"}, member)
    assert not policy.check("identity:create_grant", {}, member)
    assert policy.check("identity:create_grant", {}, admin)
    assert policy.check("identity:get_project", {"id": "p1"}, member)
    assert not policy.check("identity:get_project", {"id": "p2"}, member)


def test_operator_file_overrides_a_default(tmp_path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"identity:list_users": "role:reader"\n')
    policy = Policy(str(path))
    reader = {"user_id": "u1", "roles": ["reader"]}
    assert policy.check("identity:list_users", {}, reader)
    assert not Policy().check("identity:list_users", {}, reader)


def test_printed_defaults_are_a_loadable_policy_file() -> None:
    loaded = yaml.safe_load(defaults_yaml())
    assert loaded == {rule.name: rule.check_str for rule in all_rules()}
