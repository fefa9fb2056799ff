"""Human words for the audit report: metric labels with units, the key figure per family, and guidance.

``report.json`` keeps the raw metric names (scripts depend on them); the HTML page shows these labels.
Rates and accuracies are shown as percentages, AUCs as numbers in [0, 1], budgets as plain values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# metric -> (label, unit): unit "%" shows a fraction as a percentage; "" a plain number; "n" a count
_METRICS: dict[str, tuple[str, str]] = {
    # evasion
    "clean_accuracy": ("Accuracy on unmodified inputs", "%"),
    "robust_accuracy": ("Accuracy under the strongest attack (ensemble)", "%"),
    "robust_accuracy_pgd": ("Accuracy under PGD (L∞)", "%"),
    "robust_accuracy_fgsm": ("Accuracy under FGSM", "%"),
    "robust_accuracy_pgd_l2": ("Accuracy under PGD (L2)", "%"),
    "eps": ("Perturbation budget ε (L∞)", ""),
    "eps_l2": ("Perturbation budget ε (L2)", ""),
    "squeezing_pgd_detected": ("PGD examples caught by feature squeezing", "%"),
    "squeezing_clean_fpr": ("Clean inputs wrongly flagged by feature squeezing", "%"),
    "squeezing_adaptive_evasion_rate": ("Adaptive attacker's undetected errors despite squeezing", "%"),
    "squeezing_adaptive_detected": ("Adaptive examples caught by feature squeezing", "%"),
    # membership
    "tpr_at_1_fpr": ("Members found at 1 % false alarms (best attack)", "%"),
    "tpr_at_0_1_fpr": ("Members found at 0.1 % false alarms (best attack)", "%"),
    "auc": ("Membership attack AUC (best attack; 0.5 = guessing)", ""),
    "rounded_outputs_auc": ("AUC with rounded outputs (the defence)", ""),
    # extraction
    "fidelity": ("Stolen copy agrees with the model", "%"),
    "surrogate_accuracy": ("Stolen copy's accuracy", "%"),
    "victim_accuracy": ("Model's accuracy on the same inputs", "%"),
    "label_only_fidelity": ("Agreement when the API returns labels only (the defence)", "%"),
    "max_queries": ("Queries the attacker used", "n"),
    # poisoning
    "attack_success_rate": ("Backdoor trigger success rate", "%"),
    "clean_accuracy_backdoored": ("Backdoored model's accuracy on clean inputs", "%"),
    "clean_accuracy_label_flip": ("Accuracy after label flipping", "%"),
    "strip_inference_tpr": ("Triggered inputs caught by STRIP", "%"),
    "strip_inference_frr": ("Clean inputs wrongly rejected by STRIP", "%"),
    "detection_tpr": ("Poisoned rows found by the best detector", "%"),
    "detection_fpr": ("Clean rows wrongly flagged by the best detector", "%"),
    "detection_method": ("Best poison detector", "text"),
}

# the figure that answers "how exposed is this model?" for each family, shown first
KEY_FIGURE: dict[str, str] = {
    "evasion": "robust_accuracy",
    "membership": "tpr_at_1_fpr",
    "extraction": "fidelity",
    "poisoning": "attack_success_rate",
}

GUIDANCE: dict[str, str] = {
    "evasion": (
        "What this means: small, deliberately chosen changes to an input change the model's answer; the "
        "key figure is how often it stays right under the strongest attack within the budget ε. What to "
        "do: if it is low, train adversarially (PGD training), restrict the valid input range (--clip), "
        "and screen inputs at the gateway (feature squeezing) — but judge the defence by the adaptive "
        "attacker's row."
    ),
    "membership": (
        "What this means: an attacker who sees the model's outputs can tell whether a record was in the "
        "training set; finding members at a low false-alarm rate is what harms individuals. What to do: "
        "train with differential privacy (bastion train --dp), regularise, and return labels or rounded "
        "top-k probabilities instead of full scores (the gateway's output policy)."
    ),
    "extraction": (
        "What this means: with the shown number of queries an attacker trains a copy that agrees with the "
        "model this often, stealing its behaviour. What to do: return labels only or top-k, set per-identity "
        "row limits, keep the extraction monitor on (bastion serve), and watermark the model."
    ),
    "poisoning": (
        "What this means: a few mislabelled or triggered training rows plant a backdoor that fires on a "
        "trigger while clean accuracy looks normal. What to do: train only on data with recorded lineage, "
        "run the poison detectors on new data before training, and gate promotion on this audit."
    ),
}


def label(name: str) -> str:
    """The human label of a metric (known names; else per-attack names; else words from the name)."""
    if name in _METRICS:
        return _METRICS[name][0]
    match = re.match(r"^(.*)_(auc|tpr_at_1_fpr|tpr_at_0_1_fpr|fidelity|tpr|fpr)$", name)
    if match:
        what = match.group(1).replace("_", " ")
        suffix = {
            "auc": "AUC",
            "tpr_at_1_fpr": "members found at 1 % false alarms",
            "tpr_at_0_1_fpr": "members found at 0.1 % false alarms",
            "fidelity": "agreement of the stolen copy",
            "tpr": "poisoned rows found",
            "fpr": "clean rows wrongly flagged",
        }[match.group(2)]
        return f"{what}: {suffix}"
    return name.replace("_", " ").capitalize()


def _unit(name: str) -> str:
    if name in _METRICS:
        return _METRICS[name][1]
    if name.endswith(("_tpr_at_1_fpr", "_tpr_at_0_1_fpr", "_fidelity", "_tpr", "_fpr")):
        return "%"
    return ""


def value(name: str, raw: Any) -> str:
    """A metric value with its unit: fractions as percentages, counts with thousands separators."""
    if raw is None:
        return "not measured"
    unit = _unit(name)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return str(raw)
    if unit == "%":
        return f"{100 * float(raw):.1f} %"
    if unit == "n" or isinstance(raw, int):
        return f"{int(raw):,}"
    return f"{float(raw):.3g}"


def humanise(family: str, metrics: Mapping[str, Any]) -> dict[str, str]:
    """Label -> value, the family's key figure first, then the known metrics in order, then the rest."""
    order = [KEY_FIGURE.get(family, ""), *_METRICS]
    ranked = [k for k in order if k in metrics] + sorted(k for k in metrics if k not in order)
    out: dict[str, str] = {}
    for k in dict.fromkeys(ranked):
        if isinstance(metrics[k], Mapping | list | tuple):
            continue
        out[label(k)] = value(k, metrics[k])
    return out


def key_figure(family: str, metrics: Mapping[str, Any]) -> str | None:
    """``"<label>: <value>"`` for the family's most important figure, when measured."""
    name = KEY_FIGURE.get(family)
    if name is None or metrics.get(name) is None:
        return None
    return f"{label(name)}: {value(name, metrics[name])}"


__all__ = ["GUIDANCE", "KEY_FIGURE", "humanise", "key_figure", "label", "value"]
