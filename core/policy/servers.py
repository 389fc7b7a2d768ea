"""Compute (Nova v2.1) rules for servers and what hangs off them: actions, metadata,
tags, addresses, interfaces, instance actions. Named and defaulted as Nova's (secure RBAC)
so that an operator's Nova policy file keeps its meaning.

Targets are flat: `project_id` and `user_id` are the server's (for a list or a
create, the caller's project).
"""

from ciaostack.core.policy import base

ADMIN = base.ADMIN_REQUIRED
PROJECT_READER_OR_ADMIN = base.PROJECT_READER_OR_ADMIN
PROJECT_MEMBER_OR_ADMIN = base.PROJECT_MEMBER_OR_ADMIN

SERVERS = "/servers"
SERVER = "/servers/{server_id}"
ACTION = f"{SERVER}/action"


_rule = base.rule_maker("os_compute_api:")


RULES = [
    _rule("servers:index", PROJECT_READER_OR_ADMIN, "List servers.", "GET", SERVERS),
    _rule("servers:detail", PROJECT_READER_OR_ADMIN, "List servers in detail.", "GET", SERVERS),
    _rule(
        "servers:index:get_all_tenants",
        ADMIN,
        "List the servers of every project (all_tenants).",
        "GET",
        SERVERS,
    ),
    _rule(
        "servers:detail:get_all_tenants",
        ADMIN,
        "List the servers of every project in detail (all_tenants).",
        "GET",
        f"{SERVERS}/detail",
    ),
    _rule(
        "servers:allow_all_filters",
        ADMIN,
        "Filter server lists by any attribute (host, availability zone, user...).",
        "GET",
        SERVERS,
    ),
    _rule("servers:show", PROJECT_READER_OR_ADMIN, "Show a server.", "GET", SERVER),
    _rule(
        "servers:show:host_status",
        ADMIN,
        "See the state of a server's compute node (host_status, 2.16).",
        "GET",
        SERVER,
    ),
    _rule("servers:create", PROJECT_MEMBER_OR_ADMIN, "Create servers.", "POST", SERVERS),
    _rule(
        "servers:create:forced_host",
        ADMIN,
        "Choose a server's compute node (availability_zone 'zone:host').",
        "POST",
        SERVERS,
    ),
    _rule(
        "servers:create:requested_destination",
        ADMIN,
        "Choose a server's compute node (host, hypervisor_hostname at 2.74).",
        "POST",
        SERVERS,
    ),
    _rule("servers:update", PROJECT_MEMBER_OR_ADMIN, "Update a server.", "PUT", SERVER),
    _rule("servers:delete", PROJECT_MEMBER_OR_ADMIN, "Delete a server.", "DELETE", SERVER),
    _rule("servers:start", PROJECT_MEMBER_OR_ADMIN, "Start a server (os-start).", "POST", ACTION),
    _rule("servers:stop", PROJECT_MEMBER_OR_ADMIN, "Stop a server (os-stop).", "POST", ACTION),
    _rule("servers:reboot", PROJECT_MEMBER_OR_ADMIN, "Reboot a server.", "POST", ACTION),
    _rule(
        "os-extended-server-attributes",
        ADMIN,
        "See a server's OS-EXT-SRV-ATTR attributes (host, instance name, user data...).",
        "GET",
        SERVER,
    ),
    _rule("os-lock-server:lock", PROJECT_MEMBER_OR_ADMIN, "Lock a server.", "POST", ACTION),
    _rule("os-lock-server:unlock", PROJECT_MEMBER_OR_ADMIN, "Unlock a server.", "POST", ACTION),
    _rule(
        "os-lock-server:unlock:unlock_override",
        ADMIN,
        "Unlock a server that an administrator locked.",
        "POST",
        ACTION,
    ),
    _rule(
        "os-deferred-delete:force",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete a server at once (forceDelete).",
        "POST",
        ACTION,
    ),
    _rule(
        "os-deferred-delete:restore",
        PROJECT_MEMBER_OR_ADMIN,
        "Restore a soft-deleted server (restore).",
        "POST",
        ACTION,
    ),
    _rule(
        "os-admin-actions:reset_state",
        ADMIN,
        "Set a server's state to active or error, ending its task (os-resetState).",
        "POST",
        ACTION,
    ),
    _rule(
        "os-admin-actions:inject_network_info",
        ADMIN,
        "Inject a server's network information (injectNetworkInfo).",
        "POST",
        ACTION,
    ),
    _rule("os-pause-server:pause", PROJECT_MEMBER_OR_ADMIN, "Pause a server.", "POST", ACTION),
    _rule("os-pause-server:unpause", PROJECT_MEMBER_OR_ADMIN, "Unpause a server.", "POST", ACTION),
    _rule(
        "os-suspend-server:suspend", PROJECT_MEMBER_OR_ADMIN, "Suspend a server.", "POST", ACTION
    ),
    _rule("os-suspend-server:resume", PROJECT_MEMBER_OR_ADMIN, "Resume a server.", "POST", ACTION),
    _rule("servers:rebuild", PROJECT_MEMBER_OR_ADMIN, "Rebuild a server.", "POST", ACTION),
    _rule("servers:resize", PROJECT_MEMBER_OR_ADMIN, "Resize a server.", "POST", ACTION),
    _rule("os-shelve:shelve", PROJECT_MEMBER_OR_ADMIN, "Shelve a server.", "POST", ACTION),
    _rule(
        "os-shelve:shelve_offload",
        ADMIN,
        "Offload a shelved server from its compute node.",
        "POST",
        ACTION,
    ),
    _rule("os-shelve:unshelve", PROJECT_MEMBER_OR_ADMIN, "Unshelve a server.", "POST", ACTION),
    _rule(
        "os-migrate-server:migrate",
        ADMIN,
        "Move a server to another compute node (cold migration).",
        "POST",
        ACTION,
    ),
    _rule(
        "os-migrate-server:migrate:host",
        ADMIN,
        "Name the compute node a cold migration goes to (2.56).",
        "POST",
        ACTION,
    ),
    _rule(
        "servers:confirm_resize",
        PROJECT_MEMBER_OR_ADMIN,
        "Confirm a server's resize.",
        "POST",
        ACTION,
    ),
    _rule(
        "servers:revert_resize",
        PROJECT_MEMBER_OR_ADMIN,
        "Revert a server's resize.",
        "POST",
        ACTION,
    ),
    _rule(
        "servers:create_image",
        PROJECT_MEMBER_OR_ADMIN,
        "Snapshot a server into an image (createImage).",
        "POST",
        ACTION,
    ),
    _rule(
        "os-create-backup",
        PROJECT_MEMBER_OR_ADMIN,
        "Back a server up into an image (createBackup).",
        "POST",
        ACTION,
    ),
    _rule(
        "os-security-groups:add",
        PROJECT_MEMBER_OR_ADMIN,
        "Add a security group to a server (addSecurityGroup).",
        "POST",
        ACTION,
    ),
    _rule(
        "os-security-groups:remove",
        PROJECT_MEMBER_OR_ADMIN,
        "Remove a security group from a server (removeSecurityGroup).",
        "POST",
        ACTION,
    ),
    _rule(
        "os-console-output",
        PROJECT_MEMBER_OR_ADMIN,
        "Read a server's console output.",
        "POST",
        ACTION,
    ),
    _rule(
        "server-metadata:index",
        PROJECT_READER_OR_ADMIN,
        "List a server's metadata.",
        "GET",
        f"{SERVER}/metadata",
    ),
    _rule(
        "server-metadata:show",
        PROJECT_READER_OR_ADMIN,
        "Show one metadata item.",
        "GET",
        f"{SERVER}/metadata/{{key}}",
    ),
    _rule(
        "server-metadata:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Add or change metadata items.",
        "POST",
        f"{SERVER}/metadata",
    ),
    _rule(
        "server-metadata:update_all",
        PROJECT_MEMBER_OR_ADMIN,
        "Replace all metadata.",
        "PUT",
        f"{SERVER}/metadata",
    ),
    _rule(
        "server-metadata:update",
        PROJECT_MEMBER_OR_ADMIN,
        "Set one metadata item.",
        "PUT",
        f"{SERVER}/metadata/{{key}}",
    ),
    _rule(
        "server-metadata:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Delete one metadata item.",
        "DELETE",
        f"{SERVER}/metadata/{{key}}",
    ),
    _rule("os-server-tags:index", PROJECT_READER_OR_ADMIN, "List tags.", "GET", f"{SERVER}/tags"),
    _rule(
        "os-server-tags:show",
        PROJECT_READER_OR_ADMIN,
        "Check for a tag.",
        "GET",
        f"{SERVER}/tags/{{tag}}",
    ),
    _rule(
        "os-server-tags:update",
        PROJECT_MEMBER_OR_ADMIN,
        "Add a tag.",
        "PUT",
        f"{SERVER}/tags/{{tag}}",
    ),
    _rule(
        "os-server-tags:update_all",
        PROJECT_MEMBER_OR_ADMIN,
        "Replace all tags.",
        "PUT",
        f"{SERVER}/tags",
    ),
    _rule(
        "os-server-tags:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Remove a tag.",
        "DELETE",
        f"{SERVER}/tags/{{tag}}",
    ),
    _rule(
        "os-server-tags:delete_all",
        PROJECT_MEMBER_OR_ADMIN,
        "Remove all tags.",
        "DELETE",
        f"{SERVER}/tags",
    ),
    _rule(
        "ips:index", PROJECT_READER_OR_ADMIN, "List a server's addresses.", "GET", f"{SERVER}/ips"
    ),
    _rule(
        "ips:show",
        PROJECT_READER_OR_ADMIN,
        "List a server's addresses on one network.",
        "GET",
        f"{SERVER}/ips/{{network_label}}",
    ),
    _rule(
        "os-attach-interfaces:list",
        PROJECT_READER_OR_ADMIN,
        "List a server's network interfaces.",
        "GET",
        f"{SERVER}/os-interface",
    ),
    _rule(
        "os-attach-interfaces:show",
        PROJECT_READER_OR_ADMIN,
        "Show one of a server's network interfaces.",
        "GET",
        f"{SERVER}/os-interface/{{port_id}}",
    ),
    _rule(
        "os-attach-interfaces:create",
        PROJECT_MEMBER_OR_ADMIN,
        "Attach a network interface to a server (not available: 501).",
        "POST",
        f"{SERVER}/os-interface",
    ),
    _rule(
        "os-attach-interfaces:delete",
        PROJECT_MEMBER_OR_ADMIN,
        "Detach a network interface from a server (not available: 501).",
        "DELETE",
        f"{SERVER}/os-interface/{{port_id}}",
    ),
    _rule(
        "os-instance-actions:list",
        PROJECT_READER_OR_ADMIN,
        "List a server's actions.",
        "GET",
        f"{SERVER}/os-instance-actions",
    ),
    _rule(
        "os-instance-actions:show",
        PROJECT_READER_OR_ADMIN,
        "Show one action.",
        "GET",
        f"{SERVER}/os-instance-actions/{{request_id}}",
    ),
    _rule(
        "os-instance-actions:events",
        ADMIN,
        "See an action's events before 2.51 (later everyone sees them).",
        "GET",
        f"{SERVER}/os-instance-actions/{{request_id}}",
    ),
    _rule(
        "os-instance-actions:events:details",
        ADMIN,
        "See an event's host and traceback.",
        "GET",
        f"{SERVER}/os-instance-actions/{{request_id}}",
    ),
]
