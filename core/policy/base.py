"""Rules the service rules are built from, as in Keystone's and Nova's defaults.

A cloud administrator is anyone holding the `admin` role; `member` and
`reader` act within the project their token is scoped to.
"""

import functools
from collections.abc import Callable

from oslo_policy import policy

ADMIN = "role:admin"
# What the service modules build their rules from.
ADMIN_REQUIRED = "rule:admin_required"
PROJECT_READER_OR_ADMIN = f"{ADMIN_REQUIRED} or rule:project_reader"
PROJECT_MEMBER_OR_ADMIN = f"{ADMIN_REQUIRED} or rule:project_member"

RULES = [
    policy.RuleDefault("admin_required", ADMIN, "A cloud administrator."),
    policy.RuleDefault("service_role", "role:service", "A service user."),
    policy.RuleDefault("owner", "user_id:%(user_id)s", "The user a resource belongs to."),
    policy.RuleDefault(
        "admin_or_owner", "rule:admin_required or rule:owner", "Administrator or owner."
    ),
    policy.RuleDefault(
        "project_member",
        "role:member and project_id:%(project_id)s",
        "A member of the resource's project.",
    ),
    policy.RuleDefault(
        "project_reader",
        "role:reader and project_id:%(project_id)s",
        "A reader of the resource's project.",
    ),
]


def documented(
    prefix: str, name: str, check: str, description: str, method: str, path: str
) -> policy.DocumentedRuleDefault:
    """A rule with the API operation it guards, named `<prefix><name>`."""
    return policy.DocumentedRuleDefault(
        name=f"{prefix}{name}",
        check_str=check,
        description=description,
        operations=[{"method": method, "path": path}],
    )


def rule_maker(prefix: str) -> Callable[..., policy.DocumentedRuleDefault]:
    """`_rule(name, check, description, method, path)` for one service's rule names."""
    return functools.partial(documented, prefix)
