"""Compute (Nova v2.1) rules for flavors, key pairs, limits, quotas, server groups,
hypervisors, services, usage and availability zones, named and defaulted as
Nova's so that an operator's Nova policy file keeps its meaning. (Server rules
live in core/policy/servers.py.)

Targets are flat: `project_id` is the project acted on, `user_id` the owner of
a key pair.
"""

from ciaostack.core.policy import base

ADMIN = base.ADMIN_REQUIRED
ANY = ""
PROJECT_READER_OR_ADMIN = base.PROJECT_READER_OR_ADMIN
PROJECT_MEMBER_OR_ADMIN = base.PROJECT_MEMBER_OR_ADMIN
ADMIN_OR_KEY_OWNER = f"({ADMIN}) or user_id:%(user_id)s"


_rule = base.rule_maker("os_compute_api:")


FLAVOR = "/flavors/{flavor_id}"
EXTRA_SPECS = f"{FLAVOR}/os-extra_specs"
KEYPAIR = "/os-keypairs/{keypair_name}"
QUOTA_SET = "/os-quota-sets/{tenant_id}"
SERVER_GROUP = "/os-server-groups/{server_group_id}"
HYPERVISOR = "/os-hypervisors/{hypervisor_id}"

RULES = [
    _rule("os-flavor-manage:create", ADMIN, "Create a flavor.", "POST", "/flavors"),
    _rule("os-flavor-manage:update", ADMIN, "Update a flavor's description.", "PUT", FLAVOR),
    _rule("os-flavor-manage:delete", ADMIN, "Delete a flavor.", "DELETE", FLAVOR),
    _rule(
        "os-flavor-extra-specs:index",
        PROJECT_READER_OR_ADMIN,
        "List a flavor's extra specs (and see them in flavors at 2.61).",
        "GET",
        EXTRA_SPECS,
    ),
    _rule(
        "os-flavor-extra-specs:show",
        PROJECT_READER_OR_ADMIN,
        "Show one extra spec.",
        "GET",
        f"{EXTRA_SPECS}/{{flavor_extra_spec_key}}",
    ),
    _rule("os-flavor-extra-specs:create", ADMIN, "Add extra specs.", "POST", EXTRA_SPECS),
    _rule(
        "os-flavor-extra-specs:update",
        ADMIN,
        "Update an extra spec.",
        "PUT",
        f"{EXTRA_SPECS}/{{flavor_extra_spec_key}}",
    ),
    _rule(
        "os-flavor-extra-specs:delete",
        ADMIN,
        "Delete an extra spec.",
        "DELETE",
        f"{EXTRA_SPECS}/{{flavor_extra_spec_key}}",
    ),
    _rule(
        "os-flavor-access",
        ADMIN,
        "List the projects a private flavor is shared with.",
        "GET",
        f"{FLAVOR}/os-flavor-access",
    ),
    _rule(
        "os-flavor-access:add_tenant_access",
        ADMIN,
        "Share a private flavor with a project.",
        "POST",
        f"{FLAVOR}/action (addTenantAccess)",
    ),
    _rule(
        "os-flavor-access:remove_tenant_access",
        ADMIN,
        "Stop sharing a private flavor with a project.",
        "POST",
        f"{FLAVOR}/action (removeTenantAccess)",
    ),
    _rule("os-keypairs:index", ADMIN_OR_KEY_OWNER, "List key pairs.", "GET", "/os-keypairs"),
    _rule("os-keypairs:create", ADMIN_OR_KEY_OWNER, "Create a key pair.", "POST", "/os-keypairs"),
    _rule("os-keypairs:show", ADMIN_OR_KEY_OWNER, "Show a key pair.", "GET", KEYPAIR),
    _rule("os-keypairs:delete", ADMIN_OR_KEY_OWNER, "Delete a key pair.", "DELETE", KEYPAIR),
    _rule("limits", ANY, "Show the caller's project's limits and usage.", "GET", "/limits"),
    _rule(
        "limits:other_project",
        ADMIN,
        "Show another project's limits (?tenant_id).",
        "GET",
        "/limits",
    ),
    _rule("os-quota-sets:show", PROJECT_READER_OR_ADMIN, "Show a quota set.", "GET", QUOTA_SET),
    _rule(
        "os-quota-sets:detail",
        PROJECT_READER_OR_ADMIN,
        "Show a quota set with usage.",
        "GET",
        f"{QUOTA_SET}/detail",
    ),
    _rule("os-quota-sets:defaults", ANY, "Show the defaults.", "GET", f"{QUOTA_SET}/defaults"),
    _rule("os-quota-sets:update", ADMIN, "Update a quota set.", "PUT", QUOTA_SET),
    _rule("os-quota-sets:delete", ADMIN, "Reset a quota set.", "DELETE", QUOTA_SET),
    _rule(
        "os-quota-class-sets:show",
        ADMIN,
        "Show a quota class.",
        "GET",
        "/os-quota-class-sets/{quota_class}",
    ),
    _rule(
        "os-quota-class-sets:update",
        ADMIN,
        "Update a quota class (`default` sets every project's defaults).",
        "PUT",
        "/os-quota-class-sets/{quota_class}",
    ),
    _rule(
        "os-server-groups:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Create a server group.",
        "POST",
        "/os-server-groups",
    ),
    _rule(
        "os-server-groups:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete a server group.",
        "DELETE",
        SERVER_GROUP,
    ),
    _rule(
        "os-server-groups:index",
        PROJECT_READER_OR_ADMIN,
        "List the project's server groups.",
        "GET",
        "/os-server-groups",
    ),
    _rule(
        "os-server-groups:index:all_projects",
        ADMIN,
        "List every project's server groups.",
        "GET",
        "/os-server-groups",
    ),
    _rule(
        "os-server-groups:show",
        PROJECT_READER_OR_ADMIN,
        "Show a server group.",
        "GET",
        SERVER_GROUP,
    ),
    _rule("os-hypervisors:list", ADMIN, "List hypervisors.", "GET", "/os-hypervisors"),
    _rule(
        "os-migrations:index",
        ADMIN,
        "List the resizes and cold migrations of servers.",
        "GET",
        "/os-migrations",
    ),
    _rule(
        "os-hypervisors:list-detail",
        ADMIN,
        "List hypervisors in detail.",
        "GET",
        "/os-hypervisors/detail",
    ),
    _rule(
        "os-hypervisors:statistics",
        ADMIN,
        "Show the hypervisors' totals.",
        "GET",
        "/os-hypervisors/statistics",
    ),
    _rule("os-hypervisors:show", ADMIN, "Show a hypervisor.", "GET", HYPERVISOR),
    _rule(
        "os-hypervisors:uptime", ADMIN, "Show a hypervisor's uptime.", "GET", f"{HYPERVISOR}/uptime"
    ),
    _rule(
        "os-hypervisors:search",
        ADMIN,
        "Search hypervisors by hostname (before 2.53).",
        "GET",
        "/os-hypervisors/{hypervisor_hostname_pattern}/search",
    ),
    _rule(
        "os-hypervisors:servers",
        ADMIN,
        "List the servers of hypervisors found by hostname (before 2.53).",
        "GET",
        "/os-hypervisors/{hypervisor_hostname_pattern}/servers",
    ),
    _rule("os-services:list", ADMIN, "List compute services.", "GET", "/os-services"),
    _rule(
        "os-simple-tenant-usage:show",
        PROJECT_READER_OR_ADMIN,
        "Show a project's usage.",
        "GET",
        "/os-simple-tenant-usage/{tenant_id}",
    ),
    _rule(
        "os-simple-tenant-usage:list",
        ADMIN,
        "Show every project's usage.",
        "GET",
        "/os-simple-tenant-usage",
    ),
    _rule(
        "os-availability-zone:list",
        ANY,
        "List availability zones.",
        "GET",
        "/os-availability-zone",
    ),
    _rule(
        "os-availability-zone:detail",
        ADMIN,
        "List availability zones with their hosts and services.",
        "GET",
        "/os-availability-zone/detail",
    ),
]
