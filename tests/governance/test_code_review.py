"""Model-code review: one test per rule (a seeded hit and its safe twin), notebooks, bandit, SARIF."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from bastion.cli import run
from bastion.governance import review_code

SCHEMA = Path(__file__).parents[1] / "schemas" / "sarif-2.1.0" / "sarif-schema-2.1.0.json"
VALIDATOR = jsonschema_rs.Draft4Validator(
    json.loads(SCHEMA.read_text(encoding="utf-8")), validate_formats=True
)
LIVE_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"  # split so this file itself holds no key

RULE_CASES = [
    (
        "BST-C001",
        "import pickle\nobj = pickle.load(open(p, 'rb'))\n",
        "import json\nobj = json.load(open(p))\n",
    ),
    (
        "BST-C002",
        "import torch\nsd = torch.load(p)\n",
        "import torch\nsd = torch.load(p, weights_only=True)\n",
    ),
    (
        "BST-C003",
        "import joblib\nm = joblib.load(p)\n",
        "import skops.io as sio\nm = sio.load(p, trusted=[])\n",
    ),
    (
        "BST-C004",
        "import numpy as np\na = np.load(p, allow_pickle=True)\n",
        "import numpy as np\na = np.load(p)\n",
    ),
    (
        "BST-C005",
        "import yaml\nc = yaml.load(t)\n",
        "import yaml\nc = yaml.load(t, Loader=yaml.SafeLoader)\n",
    ),
    (
        "BST-C006",
        "m = AutoModel.from_pretrained('org/m', trust_remote_code=True)\n",
        "m = AutoModel.from_pretrained('org/m', revision='0' * 40)\n",
    ),
    ("BST-C007", "def f(row):\n    return eval(row['expr'])\n", "x = eval('1 + 1')\n"),
    ("BST-C008", f"API_KEY = '{LIVE_KEY}'\n", "import os\nAPI_KEY = os.environ['API_KEY']\n"),
    (
        "BST-C010",
        "import urllib.request\nurllib.request.urlretrieve('https://x.example/w.pt', 'w.pt')\n",
        "import hashlib, urllib.request\n"
        "def fetch():\n"
        "    urllib.request.urlretrieve('https://x.example/w.pt', 'w.pt')\n"
        "    assert hashlib.sha256(open('w.pt','rb').read()).hexdigest() == PINNED\n",
    ),
]


@pytest.mark.parametrize(("rule", "bad", "good"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_each_code_rule(write: Callable[[str, str], Path], rule: str, bad: str, good: str) -> None:
    b = write("bad.py", bad)
    g = write("good.py", good)
    found = review_code(paths=[b], use_bandit=False).issues
    assert [i.rule.id for i in found] == [rule]
    assert found[0].target == str(b) and found[0].line is not None
    assert LIVE_KEY not in found[0].message  # the finding names the kind, never the value
    assert review_code(paths=[g], use_bandit=False).issues == ()


def _notebook(cells: list[dict[str, Any]]) -> str:
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_notebook_outputs_pii_and_secrets(write: Callable[[str, str], Path]) -> None:
    nb = write(
        "explore.ipynb",
        _notebook(
            [
                {"cell_type": "markdown", "source": ["# data"]},
                {
                    "cell_type": "code",
                    "source": ["%matplotlib inline\n", "df = load()\n", "df.head()"],
                    "outputs": [
                        {
                            "output_type": "stream",
                            "name": "stdout",
                            "text": ["alice.smith@example.com 555-0100\n"],
                        }
                    ],
                },
                {
                    "cell_type": "code",
                    "source": ["import torch\n", "m = torch.load('m.pt')"],
                    "outputs": [{"output_type": "execute_result", "data": {"text/plain": [f"'{LIVE_KEY}'"]}}],
                },
            ]
        ),
    )
    found = review_code(paths=[nb]).issues
    got = sorted((i.rule.id, i.message.split(" ")[-1] if i.rule.id == "BST-C002" else "") for i in found)
    assert got == [("BST-C002", "3)"), ("BST-C008", ""), ("BST-C009", "")]
    pii = next(i for i in found if i.rule.id == "BST-C009")
    assert "EMAIL" in pii.message.upper() and "alice" not in pii.message
    clean = write("clean.ipynb", _notebook([{"cell_type": "code", "source": "x = 1", "outputs": []}]))
    assert review_code(paths=[clean]).issues == ()


def test_bandit_is_merged_and_sarif_validates(
    write: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write("train.py", "import subprocess, torch\nsubprocess.call(cmd, shell=True)\nm = torch.load(p)\n")
    write("serve.py", "import yaml\ncfg = yaml.safe_load(open('c.yaml'))\n")
    root = str(Path(write("x/__init__.py", "")).parents[1])
    assert run(["check", root, "--format", "sarif"]) == 1
    doc = json.loads(capsys.readouterr().out)
    errors = [f"{e.instance_path}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert errors == []
    runs = {r["tool"]["driver"]["name"]: r for r in doc["runs"]}
    assert set(runs) == {"bastion", "bandit"}
    ours = [
        (r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
        for r in runs["bastion"]["results"]
    ]
    assert ours == [("BST-C002", 3)]
    assert {r["ruleId"] for r in runs["bandit"]["results"]} >= {"B602"}
    assert "B614" not in {r["ruleId"] for r in runs["bandit"]["results"]}  # torch.load: ours, not twice
    # a clean tree: exit 0, empty results, still schema-valid
    clean = write("clean/ok.py", "print('hello')\n")
    assert run(["check", str(clean), "--format", "sarif"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["results"] for r in doc["runs"]] == [[]] and list(VALIDATOR.iter_errors(doc)) == []


def test_policy_sarif_validates(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bad = project.push_model("bad", epsilon=20.0)
    assert run(["check", bad, "--format", "sarif"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert list(VALIDATOR.iter_errors(doc)) == []
    (result,) = doc["runs"][0]["results"]
    assert result["ruleId"] == "BST-P003" and result["level"] == "error"
    assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == f"registry:{bad}"


def test_missing_path_and_bad_notebook(
    write: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write("broken.ipynb", "{not json")
    assert run(["check", str(bad)]) == 2
    assert "not a Jupyter notebook" in capsys.readouterr().err


EVASIONS = [  # an author (or attacker) who knows the rules renames the import
    ("BST-C001", "from pickle import loads as undump\nobj = undump(blob)\n"),
    ("BST-C001", "import dill as d\nobj = d.load(fh)\n"),
    ("BST-C002", "from torch import load\nsd = load(p)\n"),
    ("BST-C002", "import torch as T\nsd = T.load(p, weights_only=False)\n"),
    ("BST-C003", "from joblib import load as restore\nm = restore(p)\n"),
    ("BST-C004", "from numpy import load as npl\na = npl(p, allow_pickle=True)\n"),
    ("BST-C005", "from yaml import load, Loader\nc = load(t, Loader=Loader)\n"),
    ("BST-C007", "import builtins\nbuiltins.eval(expr)\n"),
]


@pytest.mark.parametrize(("rule", "src"), EVASIONS)
def test_renamed_imports_do_not_hide_a_call(write: Callable[[str, str], Path], rule: str, src: str) -> None:
    found = review_code(paths=[write("evasive.py", src)], use_bandit=False).issues
    assert [i.rule.id for i in found] == [rule]


def test_safe_aliases_stay_quiet(write: Callable[[str, str], Path]) -> None:
    src = (
        "from yaml import load as yload, SafeLoader as S\nc = yload(t, Loader=S)\n"
        "from torch import load as tload\nsd = tload(p, weights_only=True)\n"
        "from json import load\nd = load(fh)\n"
    )
    assert review_code(paths=[write("fine.py", src)], use_bandit=False).issues == ()


def test_bandit_password_findings_do_not_repeat_the_password(write: Callable[[str, str], Path]) -> None:
    secret = "hunter2-" + "correct-horse"
    found = review_code(paths=[write("db.py", f"password = '{secret}'\n")]).issues
    bandit = [i for i in found if i.rule.tool == "bandit"]
    assert [i.rule.id for i in bandit] == ["B105"]
    assert all(secret not in i.message for i in found) and "value not shown" in bandit[0].message


def test_engines_share_one_seam(write: Callable[[str, str], Path]) -> None:
    from bastion.governance._checkov import CheckovEngine
    from bastion.governance.code import BanditEngine
    from bastion.governance.interface import Engine

    assert isinstance(BanditEngine(), Engine) and isinstance(CheckovEngine("/nonexistent"), Engine)
    src = write("shell.py", "import subprocess\nsubprocess.call(cmd, shell=True)\n")
    via_flag = review_code(paths=[src]).issues
    via_engine = review_code(paths=[src], use_bandit=False, engines=[BanditEngine()]).issues
    assert [i.rule.id for i in via_flag] == [i.rule.id for i in via_engine] == ["B404", "B602"]
