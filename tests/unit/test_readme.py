"""The README's configuration table must name every setting with its real default."""

from __future__ import annotations

from pathlib import Path

from ciaostack.core.config import SETTINGS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    table = text.split("<!-- settings-table -->")[1].split("<!-- /settings-table -->")[0]
    for setting in SETTINGS:
        name = f"`[{setting.section}] {setting.key}`"
        row = f"| {name} | `{setting.env_name}` | `{setting.default}` |"
        assert row in table, f"README lacks {setting.section}.{setting.key}: {row}"
