"""The skeleton reading's data is a core dependency: without it the detector fails, never silently weaker."""

from __future__ import annotations

import pytest

from bastion.errors import ConfigError
from bastion.guard import _skeleton


def test_missing_confusables_data_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(name: str) -> object:
        raise ModuleNotFoundError(name)

    _skeleton._table.cache_clear()
    monkeypatch.setattr(_skeleton.resources, "files", gone)
    try:
        with pytest.raises(ConfigError, match="confusable-homoglyphs"):
            _skeleton._table()
    finally:
        monkeypatch.undo()
        _skeleton._table.cache_clear()
    assert _skeleton._table()["ꓲ"] == "l"


def test_the_table_is_the_packages() -> None:
    table = _skeleton._table()
    assert len(table) > 1000
    assert table["Ꭺ"] == "A" and table["ꓖ"] == "G"
