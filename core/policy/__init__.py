"""Policy: oslo.policy with every rule's default in code and the operator's file on top.

Each service lists its rules in a module of this package; `ciaostack policy
defaults` prints them all. Compat packages call `Policy.authorize` with the
rule name, the caller's credentials and the target's attributes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from oslo_config import cfg
from oslo_policy import policy

from ciaostack.core import errors
from ciaostack.core.policy import base, compute, identity, image, servers

RULE_MODULES = (base, identity, image, compute, servers)

# oslo.policy re-stats the policy files and walks the rule tree (with an
# inspect.getfullargspec per check) on every enforce: ~90-110 us per check on this
# project's 2-core machines. Decisions are pure functions of (rule, target,
# creds) while the rules stay the same, so they are remembered for this long;
# an edit of the operator file applies within it.
DECISION_TTL = 1.0
MAX_DECISIONS = 10000


def _frozen(mapping: Mapping[str, Any]) -> tuple[tuple[str, Hashable], ...]:
    """A hashable form of a flat target or credentials dict (lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in mapping.items()))


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
        self._decisions: dict[Hashable, bool] = {}
        self._decided_since = time.monotonic()
        self._lock = threading.Lock()

    def check(self, rule: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> bool:
        try:
            key: Hashable = (rule, _frozen(target), _frozen(creds))
            hash(key)
        except TypeError:  # a nested value: decide without remembering
            return bool(self._enforcer.enforce(rule, dict(target), dict(creds)))
        now = time.monotonic()
        with self._lock:
            if now - self._decided_since > DECISION_TTL or len(self._decisions) > MAX_DECISIONS:
                self._decisions = {}
                self._decided_since = now
            decided = self._decisions.get(key)
        if decided is None:
            decided = bool(self._enforcer.enforce(rule, dict(target), dict(creds)))
            with self._lock:
                self._decisions[key] = decided
        return decided

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
