"""Identity (Keystone v3) rules with Keystone-like defaults.

Targets are flat: `id`, `user_id`, `project_id`, `domain_id` of the object
acted on, so `user_id:%(user_id)s` reads "the caller is the target user".
"""

from oslo_policy import policy

from ciaostack.core.policy import base

ADMIN = "rule:admin_required"
ANYONE = ""
OWNER = "rule:admin_required or user_id:%(user_id)s"


_rule = base.rule_maker("identity:")


def _crud(
    noun: str, plural: str, path: str, read: str = ADMIN, write: str = ADMIN
) -> list[policy.DocumentedRuleDefault]:
    item = f"{path}/{{{noun}_id}}"
    return [
        _rule(f"get_{noun}", read, f"Show a {noun}.", "GET", item),
        _rule(f"list_{plural}", read if read != OWNER else ADMIN, f"List {plural}.", "GET", path),
        _rule(f"create_{noun}", write, f"Create a {noun}.", "POST", path),
        _rule(f"update_{noun}", write, f"Update a {noun}.", "PATCH", item),
        _rule(f"delete_{noun}", write, f"Delete a {noun}.", "DELETE", item),
    ]


RULES = [
    _rule(
        "validate_token",
        "rule:admin_required or rule:service_role or user_id:%(user_id)s",
        "Validate a token (the token's own user, a service or an administrator).",
        "GET",
        "/v3/auth/tokens",
    ),
    _rule(
        "check_token",
        "rule:admin_required or rule:service_role or user_id:%(user_id)s",
        "Check a token.",
        "HEAD",
        "/v3/auth/tokens",
    ),
    _rule(
        "revoke_token",
        "rule:admin_required or rule:service_role or user_id:%(user_id)s",
        "Revoke a token.",
        "DELETE",
        "/v3/auth/tokens",
    ),
    _rule(
        "get_auth_catalog", ANYONE, "The catalog of the caller's token.", "GET", "/v3/auth/catalog"
    ),
    _rule(
        "get_auth_projects", ANYONE, "Projects the caller may scope to.", "GET", "/v3/auth/projects"
    ),
    _rule(
        "get_auth_domains", ANYONE, "Domains the caller may scope to.", "GET", "/v3/auth/domains"
    ),
    *_crud("region", "regions", "/v3/regions", read=ANYONE),
    *_crud("service", "services", "/v3/services"),
    *_crud("endpoint", "endpoints", "/v3/endpoints"),
    _rule(
        "get_domain",
        "rule:admin_required or domain_id:%(id)s or project_domain_id:%(id)s",
        "Show a domain (administrators, tokens scoped to it or to one of its projects).",
        "GET",
        "/v3/domains/{domain_id}",
    ),
    *[r for r in _crud("domain", "domains", "/v3/domains") if r.name != "identity:get_domain"],
    _rule(
        "get_project",
        "rule:admin_required or project_id:%(id)s",
        "Show a project (administrators, or tokens scoped to it).",
        "GET",
        "/v3/projects/{project_id}",
    ),
    *[r for r in _crud("project", "projects", "/v3/projects") if r.name != "identity:get_project"],
    _rule(
        "list_user_projects",
        OWNER,
        "Projects a user has roles on.",
        "GET",
        "/v3/users/{user_id}/projects",
    ),
    _rule(
        "get_user", OWNER, "Show a user (administrators or the user).", "GET", "/v3/users/{user_id}"
    ),
    *[r for r in _crud("user", "users", "/v3/users") if r.name != "identity:get_user"],
    _rule(
        "change_password",
        OWNER,
        "Change a user's own password.",
        "POST",
        "/v3/users/{user_id}/password",
    ),
    *_crud("role", "roles", "/v3/roles"),
    _rule(
        "get_implied_role",
        ADMIN,
        "Show a role inference rule.",
        "GET",
        "/v3/roles/{prior_role_id}/implies/{implied_role_id}",
    ),
    _rule(
        "list_implied_roles",
        ADMIN,
        "Roles a role implies.",
        "GET",
        "/v3/roles/{prior_role_id}/implies",
    ),
    _rule(
        "create_implied_role",
        ADMIN,
        "Create a role inference rule.",
        "PUT",
        "/v3/roles/{prior_role_id}/implies/{implied_role_id}",
    ),
    _rule(
        "delete_implied_role",
        ADMIN,
        "Delete a role inference rule.",
        "DELETE",
        "/v3/roles/{prior_role_id}/implies/{implied_role_id}",
    ),
    _rule(
        "list_role_inference_rules",
        ADMIN,
        "Every role inference rule.",
        "GET",
        "/v3/role_inferences",
    ),
    _rule(
        "check_grant",
        ADMIN,
        "Check a role grant.",
        "HEAD",
        "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
    ),
    _rule(
        "list_grants",
        ADMIN,
        "List a user's roles on a target.",
        "GET",
        "/v3/projects/{project_id}/users/{user_id}/roles",
    ),
    _rule(
        "create_grant",
        ADMIN,
        "Grant a role.",
        "PUT",
        "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
    ),
    _rule(
        "revoke_grant",
        ADMIN,
        "Revoke a role.",
        "DELETE",
        "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
    ),
    _rule("list_role_assignments", ADMIN, "List role assignments.", "GET", "/v3/role_assignments"),
    _rule(
        "get_application_credential",
        OWNER,
        "Show an application credential.",
        "GET",
        "/v3/users/{user_id}/application_credentials/{application_credential_id}",
    ),
    _rule(
        "list_application_credentials",
        OWNER,
        "List a user's application credentials.",
        "GET",
        "/v3/users/{user_id}/application_credentials",
    ),
    _rule(
        "create_application_credential",
        "user_id:%(user_id)s",
        "Create an application credential for oneself.",
        "POST",
        "/v3/users/{user_id}/application_credentials",
    ),
    _rule(
        "delete_application_credential",
        OWNER,
        "Delete an application credential.",
        "DELETE",
        "/v3/users/{user_id}/application_credentials/{application_credential_id}",
    ),
]
