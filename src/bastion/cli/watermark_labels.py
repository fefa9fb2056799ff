"""``bastion watermark verify-labels``: name the consumer (or the two accounts) whose *labels* trained a copy.

The evidence is a gateway's ``GET /admin/theft/label-evidence`` (admins only, audit-logged): each
identity's label-marked rows and control rows, MAC'd under the watermark key. The suspect — a model
directory, a registry ref, or an Open Inference Protocol v2 endpoint — is asked for its labels on those rows
(:func:`bastion.watermark.label_evidence.attribute_labels`). Exit codes: 0 — no consumer named at
p < 1e-6; 1 — a consumer (or a pair of accounts) named (a finding); 2 — an error (wrong key, altered
evidence, unreachable URL, wrong shape).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import FORMAT_OPTION, HOME_OPTION, OutputFormat
from bastion.errors import InvalidInput


def _suspect(
    *, model: str | None, url: str | None, model_name: str | None, bearer_env: str | None, vault: Any, ev: Any
) -> tuple[Any, str]:
    from bastion.cli._watermark_common import _bearer_headers, _local_suspect

    if url is not None:
        from bastion.models.adapters import RemoteAdapter

        assert model_name is not None
        adapter = RemoteAdapter(
            url,
            model=model_name,
            n_classes=ev.n_classes,
            input_shape=(ev.n_features,),
            outputs="probabilities",
            headers=_bearer_headers(bearer_env),
        )
        return adapter, f"{url.rstrip('/')}/v2/models/{model_name}"
    assert model is not None
    local, loaded = _local_suspect(model, vault)
    cfg = loaded.config
    if (cfg.n_features, cfg.n_classes) != (ev.n_features, ev.n_classes):
        raise InvalidInput(
            f"{model}: {cfg.n_features} features / {cfg.n_classes} classes, the evidence has "
            f"{ev.n_features} / {ev.n_classes}"
        )
    return local, model


def verify_labels(
    *,
    evidence_file: Path,
    model: str | None,
    url: str | None,
    model_name: str | None,
    bearer_env: str | None,
    key_file: Path | None,
    key_id: str | None,
    home: Path | None,
    fmt: OutputFormat,
) -> None:
    from bastion.cli.watermark import _emit, _key, _needs_vault, _vault
    from bastion.watermark.label_evidence import LabelEvidence
    from bastion.watermark.verify import OWNED_P

    if (model is None) == (url is None):
        raise InvalidInput("give exactly one of --model REF or --url URL")
    if url is not None and not model_name:
        raise InvalidInput("--url needs --model-name NAME")
    evidence = LabelEvidence.load(evidence_file)
    needs = _needs_vault(key_file, home) or (model is not None and not Path(model).exists())
    vault = _vault(home) if needs else None
    try:
        key = _key(key_file, key_id, vault)
        evidence.check(key)  # before querying anyone: a wrong key or altered file stops here
        adapter, suspect = _suspect(
            model=model, url=url, model_name=model_name, bearer_env=bearer_env, vault=vault, ev=evidence
        )
        if url is not None:
            import numpy as np

            rows = [x for mx, _, cx, _ in evidence.consumers.values() for x in (mx, cx) if len(x)]
            if not rows:
                raise InvalidInput(f"{evidence_file}: the evidence holds no rows")
            adapter.negotiate(np.asarray(rows[0][:1], np.float32))  # a gateway: labels or probabilities
        try:
            found = evidence.attribute(key=key, predict=adapter.predict)
        finally:
            if hasattr(adapter, "close"):
                adapter.close()
    finally:
        if vault is not None:
            vault.close()
    named = found.named
    attributed = bool(named) and found.best_p < OWNED_P
    doc = {**found.to_dict(), "suspect": suspect, "attributed": attributed, "key_id": evidence.key_id}
    lines = []
    if attributed and len(named) == 1:
        t = found.tests[named[0]]
        lines.append(
            f"{suspect}: trained on the labels given to {named[0]} (marked rows {t[0]}/{t[1]} carry the "
            f"mark vs control {t[2]}/{t[3]}, p={found.p_value:.3g})"
        )
    elif attributed:
        each = ", ".join(
            f"{c} p={found.tests[c][4]:.3g}" if c in found.tests else f"{c} (too few marks alone)"
            for c in named
        )
        lines.append(
            f"{suspect}: trained on the labels given to {' + '.join(named)} (two accounts combined: "
            f"p={found.group_p_value:.3g}, Fisher's method {found.group_fisher_p:.3g}; each uncorrected: "
            f"{each})"
        )
    else:
        lines.append(
            f"{suspect}: no consumer identified (best p={found.best_p:.3g} over {len(found.tests)} consumers)"
        )
    _emit(fmt, doc, lines)
    if attributed:
        raise typer.Exit(1)


def register(group: typer.Typer) -> None:
    from bastion.cli.watermark import KEY_FILE_OPTION, KEY_ID_OPTION

    @group.command("verify-labels")
    def verify_labels_cmd(
        evidence_file: Path = typer.Option(
            ..., "--evidence", help="A gateway's /admin/theft/label-evidence file (MAC'd label marks)."
        ),
        model: str | None = typer.Option(
            None, "--model", help="Suspect: a model directory or a registry ref."
        ),
        url: str | None = typer.Option(
            None, "--url", help="Suspect: an Open Inference Protocol v2 endpoint (base URL)."
        ),
        model_name: str | None = typer.Option(None, "--model-name", help="The model's name at --url."),
        bearer_env: str | None = typer.Option(
            None, "--bearer-env", help="Environment variable holding a bearer token for --url."
        ),
        key_file: Path | None = KEY_FILE_OPTION,
        key_id: str | None = KEY_ID_OPTION,
        home: Path | None = HOME_OPTION,
        fmt: OutputFormat = FORMAT_OPTION,
    ) -> None:
        """Name the consumer (or two accounts) whose labels trained the suspect; exit 1 when named."""
        verify_labels(
            evidence_file=evidence_file,
            model=model,
            url=url,
            model_name=model_name,
            bearer_env=bearer_env,
            key_file=key_file,
            key_id=key_id,
            home=home,
            fmt=fmt,
        )


__all__ = ["register", "verify_labels"]
