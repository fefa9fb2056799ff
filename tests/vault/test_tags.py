"""Registry tags with newlines, tabs or other control characters forged listing lines (review minor)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import InvalidInput


@pytest.mark.parametrize(
    "tags",
    [
        {"stage": "prod\nevil:9\tmodel\tprod"},
        {"stage": "a\tb"},
        {"st\rage": "x"},
        {"stage": "x\x1b[31m"},
        {"stage": "x\u2028y"},
        {"stage": "x\u202ey"},
        {"": "x"},
        {"stage": "x" * 257},
    ],
)
def test_control_characters_in_tags_are_refused(vault, artifact: Path, tags: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        vault.push(artifact, name="tagged", tags=tags)


def test_plain_tags_are_kept(vault, artifact: Path) -> None:
    version = vault.push(artifact, name="tagged", tags={"stage": "prod", "owner": "Zoë Ng"})
    assert dict(version.tags) == {"stage": "prod", "owner": "Zoë Ng"}
