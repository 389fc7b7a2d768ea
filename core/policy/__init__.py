"""Policy: oslo.policy with every rule's default in code and the operator's file on top.

Each service lists its rules in a module of this package; `ciaostack policy
defaults` prints them all. Compat packages call `Policy.authorize` with the
rule name, the caller's credentials and the target's attributes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from oslo_config import cfg
from oslo_policy import policy

from ciaostack.core import errors
from ciaostack.core.policy import base, identity

RULE_MODULES = (base, identity)


def all_rules() -> list[policy.RuleDefault]:
    rules: list[policy.RuleDefault] = []
    for module in RULE_MODULES:
        rules.extend(module.RULES)
    return rules


class Policy:
    """One enforcer per process; the operator file is re-read when it changes."""

    def __init__(self, policy_file: str = "") -> None:
        conf = cfg.ConfigOpts()
        conf([], project="ciaostack", default_config_files=[], default_config_dirs=[])
        # With no operator file, point at an empty one: the defaults apply.
        self._enforcer = policy.Enforcer(conf, policy_file=policy_file or os.devnull)
        self._enforcer.register_defaults(all_rules())

    def check(self, rule: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> bool:
        return bool(self._enforcer.enforce(rule, dict(target), dict(creds)))

    def authorize(self, rule: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> None:
        if not self.check(rule, target, creds):
            raise errors.Forbidden(
                f"You are not authorized to perform the requested action: {rule}."
            )


def defaults_yaml(rules: Iterable[policy.RuleDefault] | None = None) -> str:
    """The defaults as an operator's policy file would spell them, with descriptions."""
    lines: list[str] = []
    for rule in rules if rules is not None else all_rules():
        description = getattr(rule, "description", None)
        if description:
            lines.extend(f"# {line}" for line in description.splitlines())
        for op in getattr(rule, "operations", None) or []:
            lines.append(f"# {op['method']}  {op['path']}")
        lines.append(f'"{rule.name}": "{rule.check_str}"')
        lines.append("")
    return "\n".join(lines)
