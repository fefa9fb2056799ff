"""Round 15 (guard16x, issue 16): the opt-in garak clean-twin weighting of the main documents head
(scripts/_guard_r14_docs.py ``twin_weighted``, ``guard_r14_docs.py train --twins``). The round-14 head
flagged the clean versions of garak's latent-injection pages (the page is memorised, not the injected
line); the weighting gives each clean page as much weight as its page's injected train rows. The flag
stays off by default in the CLI; round 16 ships its ``--docs 5 --twins`` head (candidate P2,
tests/guard/test_r16_shipped.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _guard_r14_docs as rd


def _rows() -> list[dict]:
    rows = [
        {
            "text": f"page A + injection {i}",
            "label": 1,
            "source": "garak:latentinjection",
            "group": f"g-li-2-{i}",
            "split": "train",
            "set": "indirect",
        }
        for i in range(5)
    ]
    rows += [
        {
            "text": "page B + injection",
            "label": 1,
            "source": "garak:latentinjection",
            "group": "g-li-0-7",
            "split": "test",
            "set": "indirect",
        },
        {
            "text": "page A",
            "label": 0,
            "source": "garak:latentinjection-clean",
            "group": "g-lic-2",
            "split": "train",
            "set": "indirect",
        },
        {
            "text": "page B",
            "label": 0,
            "source": "garak:latentinjection-clean",
            "group": "g-lic-0",
            "split": "test",
            "set": "indirect",
        },
        {
            "text": "a benign document",
            "label": 0,
            "source": "docs:x",
            "group": "d-1",
            "split": "train",
            "set": "documents",
        },
    ]
    return rows


def test_clean_twin_weighted_by_its_pages_injected_train_rows() -> None:
    rows = _rows()
    out = rd.twin_weighted(rows)
    weights = {r["group"]: r.get("weight", 1.0) for r in out}
    assert weights["g-lic-2"] == 5.0  # five injected train rows of page 2
    assert weights["g-lic-0"] == 1.0  # page 0's injected rows are test rows: never counted
    assert all(weights[r["group"]] == 1.0 for r in rows if r["source"] != "garak:latentinjection-clean")
    assert all("weight" not in r for r in rows)  # the input rows are not modified


def test_twin_weighting_is_off_by_default_in_the_cli() -> None:
    import guard_r14_docs

    src = Path(guard_r14_docs.__file__).read_text(encoding="utf-8")
    assert '"--twins"' in src and 'action="store_true"' in src
    assert rd.fit_main.__kwdefaults__["twins"] is False
