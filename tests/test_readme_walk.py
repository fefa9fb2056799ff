"""A newcomer walks the README (issue 14, must-hold): every documented ``bastion`` command, in the README's
order, in one fresh project home.

Each ```bash block line is one of:

* a **runnable example** — run as written (after ``export`` lines) in one directory with one home; it must
  exit 0 (or the exit code its comment documents: "exit 1 …"), and print no traceback or "internal error"
  (consecutive ``bastion federate`` examples, which mostly wait on Flower's polling, run at the same time);
* a **synopsis** (``[--option]``, ``A|B``, ``…`` or an UPPER-CASE placeholder) — its command must exist and
  every option it names must be an option of that command; without its ``[optional]`` parts, a synopsis
  with no placeholder left is run too (``bastion data scan customers.csv``);
* a line in ``SKIP`` — a server that runs until stopped or a call to a host that is not here; the reason
  is given, and the gateway's own client examples are run by tests/serve/test_readme_gateway.py;
* a line in ``DEDICATED`` — a command whose own end-to-end test runs this very command line (checked: the
  test's source holds the same argv). The walk parses its arguments with the real CLI (an unknown or
  malformed option fails the walk) and does not run it a second time: ``bastion demo --out ./bastion-demo``
  is run by tests/ui/test_demo.py::test_demo_runs_the_lifecycle (``bastion demo --out DIR``, its own home),
  ``bastion audit --demo --out ./audit --budget quick`` by tests/adversarial/test_audit.py's ``demo_cli``
  fixture (the same argv through the CLI's entry point; the demo audit needs no home), and the SecAgg+
  federation (``--secagg --dp-side client``: a SecAgg+ round takes tens of seconds) by
  tests/privacy/federated/test_federated.py, which runs the README's line word for word in its own home
  (with the README's budget) plus ``--model-out`` and ``--format json`` to check the noise it added.

Time per command: ``pytest -s tests/test_readme_walk.py`` prints the seconds each README command took (slowest
first); ``BASTION_WALK_TIMES=FILE`` also writes them to FILE.

The input files the README names (customers.csv, patients.csv, …) are the newcomer's own data: the walk
writes small ones first (gate.toml is the README's own example policy). Everything else, the home included,
starts empty.
"""

from __future__ import annotations

import os
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from bastion.cli import build_command

README = Path(__file__).resolve().parents[1] / "README.md"

# line prefix -> why the walk does not run it here
SKIP = {
    "bastion serve digits@prod": "a server: runs until stopped (the client examples have their own test)",
    "bastion serve digits:3": "a server with the admin's own TLS files and Redis",
    "bastion serve digits --insecure": "a server: runs until stopped",
    "bastion watermark verify --url https://suspect.example": "queries a suspect's host, not here",
}
# line prefix -> (the test that runs this very command line end to end, the argv it runs, as written there):
# the walk parses the line's arguments with the real CLI (a wrong option fails here), not running it twice
DEDICATED = {
    "bastion demo --out ./bastion-demo": ("tests/ui/test_demo.py", '["bastion", "demo", "--out", str(out)]'),
    "bastion audit --demo --out ./audit --budget quick": (
        "tests/adversarial/test_audit.py",
        '["audit", "--demo", "--out", str(out / "r"), "--budget", "quick"]',
    ),
    # (a command line as one string: the test runs it split, plus where to write the model and --format json)
    "bastion federate --dataset digits --clients 3 --rounds 1 --secagg": (
        "tests/privacy/federated/test_federated.py",
        '"federate --dataset digits --clients 3 --rounds 1 --secagg --dp-noise 1.0 --clip 2 --dp-side client"',  # noqa: E501
    ),
}
# commands that wait on their own processes more than they compute (the Flower deployment engine: each
# SuperNode polls its SuperLink every 3 s): consecutive ones run at the same time, and the walk waits for
# all of them before the next command
CONCURRENT = ("bastion federate ",)
SYNOPSIS = re.compile(r"\[|\||…|\b[A-Z][A-Z_]{2,}\b")


def _commands() -> list[tuple[int, str]]:
    """(line number, command) for every line of every bash block, continuations joined, comments dropped."""
    text = README.read_text(encoding="utf-8")
    out: list[tuple[int, str]] = []
    for block in re.finditer(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        first = text[: block.start()].count("\n") + 2
        pending, start = "", first
        for i, raw in enumerate(block.group(1).splitlines()):
            line = raw.strip()
            if not pending:
                start = first + i
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = (pending + line).strip()
            pending = ""
            if line.startswith("#") or not line:
                continue
            out.append((start, line))
    return out


def _strip_comment(line: str) -> tuple[str, str]:
    match = re.search(r"\s+#\s", line)
    return (line[: match.start()], line[match.end() :]) if match else (line, "")


def _expected_exits(comment: str) -> set[int]:
    """What the comment documents: "exit 1: …" means 1; "exit 1 if …" means 0 or 1; nothing means 0."""
    match = re.search(r"\bexit (\d)\b(\s+(?:if|when|below|above)\b)?", comment)
    if match is None:
        return {0}
    return {0, int(match.group(1))} if match.group(2) else {int(match.group(1))}


def _check_dedicated(line: str, root: click.Command) -> None:
    """Parse ``line`` as the CLI would (not running it); its dedicated test must run the same argv."""
    test, argv = next(v for k, v in DEDICATED.items() if line.startswith(k))
    source = (README.parent / test).read_text(encoding="utf-8")
    assert argv in source, f"{test} no longer runs `{line}`: run it in the walk again"
    words = shlex.split(line)[1:]
    named = re.findall(r'"(-[^"]+)"', argv) if argv.startswith("[") else shlex.split(argv.strip('"'))
    assert [w for w in words if w.startswith("-")] == [w for w in named if w.startswith("-")], (line, argv)
    if not argv.startswith("["):  # a whole command line: the same words, values included
        assert words == shlex.split(argv.strip('"')), (line, argv)
    cmd, ctx_args = root, words
    while isinstance(cmd, click.Group) and ctx_args and ctx_args[0] in cmd.commands:
        cmd, ctx_args = cmd.commands[ctx_args[0]], ctx_args[1:]
    cmd.make_context(cmd.name or "bastion", list(ctx_args))  # raises a UsageError on a bad option


def _check_synopsis(line: str, root: click.Command) -> None:
    words = shlex.split(line.replace("|", " ").replace("[", " ").replace("]", " "))[1:]
    cmd = root
    while isinstance(cmd, click.Group) and words and words[0] in cmd.commands:
        cmd = cmd.commands[words.pop(0)]
    assert not isinstance(cmd, click.Group), f"README synopsis names no command: {line}"
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"README: {word} is not an option of `{line}`"


def _inputs(cwd: Path) -> None:
    """The newcomer's own small input files, named as the README names them."""
    import numpy as np

    rows = ["name,email,phone,zip,age,gender,diagnosis,card_number"]
    for i in range(40):
        rows.append(
            f"Person{i} Example,p{i}@example.com,+47 412 34 {i:03d},{10000 + 37 * i},{20 + i},"
            f"{'FM'[i % 2]},{['flu', 'cold', 'none'][i % 3]},4111111111111111"
        )
    (cwd / "customers.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    lines = ["a,b,c,outcome"] + [
        f"{x:.3f},{y:.3f},{z:.3f},{int(x + y > 0)}" for x, y, z in rng.normal(size=(200, 3))
    ]
    (cwd / "patients.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cities = ["Oslo", "Bergen"] * 50
    (cwd / "visits.csv").write_text("city,visits\n" + "".join(f"{c},{i}\n" for i, c in enumerate(cities)))
    from bastion.models.recipes import load_dataset

    digits = load_dataset("digits")
    bc = load_dataset("breast_cancer")
    assert digits.preprocessing is not None and bc.preprocessing is not None
    # a newcomer's data files hold raw features: models store their scaling and apply it (issue 14 item 10)
    np.savez(cwd / "bc-test.npz", x=bc.preprocessing.invert(bc.x_test), y=bc.y_test)
    text = README.read_text(encoding="utf-8")
    gate = re.search(r"```toml\n(.*?)```", text[text.index("A policy turns") :], flags=re.DOTALL)
    assert gate, "README: the audit policy example moved"
    (cwd / "gate.toml").write_text(gate.group(1), encoding="utf-8")  # the README's own gate
    raw_digits = digits.preprocessing.invert(digits.x_test)  # pixel values 0..16, as scikit-learn ships them
    for name in ("holdout.npz", "test.npz"):
        np.savez(cwd / name, x=raw_digits, y=digits.y_test)
    np.savez(cwd / "d.npz", x=digits.x_test, y=digits.y_test)  # for pkg.nets:make_net, a net of its own scale
    import torch
    from safetensors.torch import save_file

    (cwd / "pkg").mkdir()
    (cwd / "pkg" / "__init__.py").write_text("")
    (cwd / "pkg" / "nets.py").write_text(
        "import torch.nn as nn\n\n\ndef make_net():\n"
        "    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))\n"
    )
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(cwd / "w.safetensors"))


class _Started:
    """One README command started in the walk's directory (stdout and stderr to files, not pipes: several
    may run at once)."""

    def __init__(self, number: int, command: str, comment: str, cwd: Path, env: dict[str, str]) -> None:
        self.number, self.command, self.expected = number, command, _expected_exits(comment)
        self.log = cwd.parent / f"walk-{number}.log"
        self.started = time.monotonic()
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=sink, stderr=sink)


def _finish(
    pending: list[_Started], durations: list[tuple[float, float, int, str]], failures: list[str]
) -> None:
    """Wait for the started commands (the CPU of a group that ran at once is booked on its last line)."""
    cpu = _children_cpu()
    for i, run in enumerate(pending):
        code = run.proc.wait(timeout=600)
        wall = time.monotonic() - run.started
        spent = _children_cpu() - cpu if i == len(pending) - 1 else 0.0
        label = run.command if len(pending) == 1 else f"{run.command}  [ran with {len(pending) - 1} more]"
        durations.append((wall, spent, run.number, label))
        out = run.log.read_text(encoding="utf-8", errors="replace")
        if code not in run.expected or "Traceback" in out or "internal error" in out:
            failures.append(
                f"README line {run.number}: `{run.command}` exited {code} (expected {sorted(run.expected)}): "
                + " | ".join(out.strip().splitlines()[-3:])
            )
    pending.clear()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _report_durations(durations: list[tuple[float, float, int, str]], elapsed: float) -> None:
    """Wall and CPU seconds per README command (CPU: user + system of the command and its children, which a
    busy shared machine does not inflate), by CPU, highest first: shown with ``pytest -s``, and written to the
    file named by ``BASTION_WALK_TIMES`` when set (the walk's profile: where its time goes)."""
    rows = sorted(durations, key=lambda d: d[1], reverse=True)
    lines = [f"{wall:7.2f}s wall {cpu:7.2f}s cpu  line {n:4d}  {command}" for wall, cpu, n, command in rows]
    wall_total, cpu_total = sum(d[0] for d in durations), sum(d[1] for d in durations)
    head = (
        f"README walk: {len(durations)} commands, {elapsed:.1f}s elapsed ({wall_total:.1f}s wall summed over "
        f"commands, some ran at once), {cpu_total:.1f}s cpu\n"
    )
    report = head + "\n".join(lines) + "\n"
    print(report)
    target = os.environ.get("BASTION_WALK_TIMES")
    if target:
        Path(target).write_text(report, encoding="utf-8")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_newcomer_walks_the_readme(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["BASTION_NO_PROGRESS"] = "1"
    _inputs(tmp_path)
    root = build_command()
    failures: list[str] = []
    ran = checked = 0
    durations: list[tuple[float, float, int, str]] = []
    pending: list[_Started] = []
    walk_started = time.monotonic()
    for number, line in _commands():
        command, comment = _strip_comment(line)
        if command.startswith("export "):
            for assignment in shlex.split(command)[1:]:
                key, _, value = assignment.partition("=")
                env[key] = value.replace("$PWD", str(tmp_path))
            continue
        if not command.startswith("bastion "):
            continue  # pip, pytest, python -c, flower: the install/test tests and the federation tests
        if any(command.startswith(prefix) for prefix in SKIP):
            continue
        if any(command.startswith(prefix) for prefix in DEDICATED):
            try:
                _check_dedicated(command, root)
            except (AssertionError, click.ClickException) as exc:
                failures.append(f"README line {number}: {exc}")
            checked += 1
            durations.append((0.0, 0.0, number, f"{command}  [parsed; run by its dedicated test]"))
            continue
        if SYNOPSIS.search(command.split(">")[0]):
            try:
                _check_synopsis(command.split(">")[0], root)
            except AssertionError as exc:
                failures.append(f"README line {number}: {exc}")
            checked += 1
            command = re.sub(r"\s*\[[^\]]*\]", "", command)  # the shortest form it documents
            if SYNOPSIS.search(command):
                continue  # placeholders left: checked, not run
        if not command.startswith(CONCURRENT):
            _finish(pending, durations, failures)
        pending.append(_Started(number, command, comment, tmp_path, env))
        ran += 1
        if not command.startswith(CONCURRENT):
            _finish(pending, durations, failures)
    _finish(pending, durations, failures)
    _report_durations(durations, time.monotonic() - walk_started)
    assert ran >= 25 and checked >= 5, (ran, checked)
    assert (tmp_path / "restored").is_dir(), "the quick start's registry pull wrote nothing"
    assert not failures, "\n".join(failures)
