"""The demo's ``index.html``: one self-contained page (inline CSS, no script) linking every artifact."""

from __future__ import annotations

import html
import json
from typing import Any

from bastion.demo.runner import DemoRun

_CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2rem auto;padding:0 1rem;
color:#1f2328;line-height:1.45}table{border-collapse:collapse;margin:.6rem 0 1.2rem}
td,th{border:1px solid #d0d7de;
padding:.3rem .6rem;text-align:left;vertical-align:top}th{background:#f6f8fa}a{color:#0550ae}
.ok{color:#1a7f37;font-weight:700}.bad{color:#a40e26;font-weight:700}code{font-size:.9rem}"""


def _e(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.4g}"
    return html.escape(str(value), quote=True)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(run: DemoRun) -> str:
    f = run.facts
    attack = f.get("attack") or {}
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bastion demo</title>',
        f"<style>{_CSS}</style></head><body><main>",
        "<h1>bastion demo: one model's whole lifecycle</h1>",
        f"<p>Project home: <code>{_e(run.home)}</code>. Every step ran the <code>bastion</code> CLI; "
        "its output is linked in the table of steps.</p>",
        "<h2>Results</h2><ul>",
    ]
    train = f.get("train") or {}
    parts.append(
        "<li>Sensitive columns found (PII and quasi-identifiers) and protected: "
        f"{_e(', '.join(f.get('pii_columns') or []) or '-')}</li>"
    )
    parts.append(
        f"<li>DP-SGD model: accuracy {_e(train.get('accuracy', '-'))}, ε = {_e(train.get('epsilon', '-'))}, "
        f"δ = {_e(train.get('delta', '-'))}; watermark key id {_e(f.get('watermark_key_id', '-'))}</li>"
    )
    parts.append(f"<li>Adversarial audit grade: {_e(f.get('audit_grade', '-'))}</li>")
    findings, actions = attack.get("findings") or [], attack.get("actions") or []
    parts.append(
        f"<li>Hunting: {len(findings)} finding(s); response: {len(actions)} action(s) in "
        f"{_e(attack.get('hunt_respond_seconds', 0.0))} s</li>"
    )
    after = (attack.get("traffic") or {}).get("after") or {}
    if after:
        code = after.get("extraction_status")
        cls = "ok" if code in (401, 403) else "bad"
        parts.append(
            f'<li>The extraction client\'s next request after the response: <span class="{cls}">'
            f"HTTP {_e(code)}</span></li>"
        )
        benign = after.get("benign_status")
        cls = "ok" if benign == 200 else "bad"
        parts.append(
            f'<li>The benign client\'s next request after the response: <span class="{cls}">'
            f"HTTP {_e(benign)}</span></li>"
        )
    log = f.get("log") or {}
    if log:
        state = "OK" if log.get("witnessed") else "UNWITNESSED (no witness configured in the demo home)"
        parts.append(f"<li>Audit log: consistent, {_e(log.get('size'))} entries, {_e(state)}</li>")
    parts.append("</ul><h2>Artifacts</h2>")
    parts.append(
        "<ul>"
        + "".join(
            f'<li><a href="{_e(path)}">{_e(title)}</a>: {_e(what)}</li>' for title, path, what in run.links
        )
        + "</ul>"
    )
    if findings:
        parts.append("<h2>Findings</h2>")
        parts.append(
            _table(
                ["rule", "title", "ATLAS", "severity", "identity", "client", "events"],
                [
                    [
                        x["rule_id"],
                        x["title"],
                        ", ".join(t["id"] for t in x["techniques"]),
                        x["severity"],
                        x["identity"],
                        x["client"],
                        x["count"],
                    ]
                    for x in findings
                ],
            )
        )
    if actions:
        parts.append("<h2>Response actions</h2>")
        parts.append(
            _table(
                ["action", "target", "status", "rule", "detail"],
                [[a["action"], a["target"], a["status"], a["rule_id"], a["detail"]] for a in actions],
            )
        )
    traffic = attack.get("traffic") or {}
    if traffic:
        parts.append("<h2>Traffic at the gateway (HTTP status: count)</h2>")
        parts.append(
            _table(["client", "statuses"], [[k, json.dumps(v, sort_keys=True)] for k, v in traffic.items()])
        )
    parts.append("<h2>Steps</h2>")
    parts.append(
        "<table><thead><tr><th>command</th><th>exit</th><th>seconds</th><th>output</th></tr></thead><tbody>"
    )
    for s in run.steps:
        parts.append(
            f"<tr><td><code>{_e(s['command'])}</code></td><td>{_e(s['exit'])}</td>"
            f'<td>{_e(round(s["seconds"], 1))}</td><td><a href="{_e(s["log"])}">log</a></td></tr>'
        )
    pw = f.get("passphrase_file")
    env = f"BASTION_PASSPHRASE=$(cat {_e(run.out / pw)}) " if pw else ""
    parts.append(
        f"</tbody></table><p>See the dashboard (sign in with the token in "
        f"<code>{_e(run.out / 'auditor-token.txt')}</code>): <code>{env}bastion ui --home "
        f"{_e(run.home)} --reports {_e(run.out / 'audit')}</code></p></main></body></html>"
    )
    return "\n".join(parts)


def write_index(run: DemoRun) -> None:
    (run.out / "index.html").write_text(render(run), encoding="utf-8")
    (run.out / "demo.json").write_text(
        json.dumps({"facts": run.facts, "steps": run.steps, "links": run.links}, indent=2, default=str),
        encoding="utf-8",
    )


__all__ = ["render", "write_index"]
