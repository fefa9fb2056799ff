"""Issue 21 F6: e-mail addresses written to dodge scrapers (``name [at] mail [dot] ru``) are found."""

from __future__ import annotations

import random
import string
from pathlib import Path

from bastion.data import ScopeKeys, protect_file

KEYS = ScopeKeys(bytes(range(32)), scope="obf")


def test_obfuscated_emails_do_not_survive_protect(tmp_path: Path) -> None:
    rnd = random.Random(9)
    forms = ("{l} [at] {d} [dot] {t}", "{l}(at){d}(dot){t}", "{l} {{at}} {d} . {t}", "{l} [AT] {d} [DOT] {t}")
    values = []
    for i in range(60):
        local = "".join(rnd.choice(string.ascii_lowercase) for _ in range(8)) + str(rnd.randint(1, 99))
        domain = rnd.choice(["mail", "posteo", "yandex", "web"])
        values.append(forms[i % len(forms)].format(l=local, d=domain, t=rnd.choice(["ru", "de", "com"])))
    remarks = [f"pls write to {v} after 5pm" for v in values]
    src = tmp_path / "r.csv"
    src.write_text("id,remark\n" + "".join(f"{i},{r}\n" for i, r in enumerate(remarks)), encoding="utf-8")
    protect_file(path=src, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    text = (tmp_path / "o.csv").read_text(encoding="utf-8")
    assert [v for v in values if v.split(" ")[0].split("(")[0] in text] == []
    assert text.count("after 5pm") == 60
