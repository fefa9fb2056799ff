"""Model watermarking and ownership proof.

* Trigger-set watermark (Adi et al., USENIX Security 2018; :mod:`bastion.watermark.triggers`): a secret key
  deterministically yields out-of-distribution trigger inputs and their labels; the model learns them while
  training (:func:`watermark_hook`) or by fine-tuning (:func:`embed`).
* Commitments (:mod:`bastion.watermark.commitment`): SHA-256 of the trigger set and key id, written to the
  tamper-evident audit log at embedding time (:func:`log_commitment`).
* Verification (:mod:`bastion.watermark.verify`): trigger accuracy of a suspect and the one-sided binomial
  p-value against chance, with a verdict (``owned`` below 1e-6, ``not_detected`` from 0.01).
* API watermark in the spirit of DAWN (Szyller et al. 2021; :class:`ApiWatermark`): the gateway marks a keyed
  0.5 % of answers so that a surrogate trained on them carries the mark (:func:`verify_marks`).
* Signed ownership reports (:mod:`bastion.watermark.report`): Ed25519 over the result, the commitment and its
  audit-log inclusion proof.

Keys: :func:`generate_key`, key files (:func:`write_key_file` / :func:`read_key_file`) or the project home
(:func:`store_key` / :func:`load_home_key`, wrapped by the key provider).
"""

from __future__ import annotations

from bastion.watermark.api import ApiMarks, ApiWatermark, verify_marks
from bastion.watermark.commitment import (
    WatermarkRecord,
    annotate_version,
    home_records,
    log_commitment,
    make_record,
    read_record,
)
from bastion.watermark.embed import (
    EmbedResult,
    TrainingWatermark,
    adapter_for,
    embed,
    fine_tune,
    prune_magnitude,
    watermark_hook,
)
from bastion.watermark.keys import (
    WatermarkKey,
    ensure_home_key,
    generate_key,
    home_key_ids,
    load_home_key,
    read_key_file,
    resolve_key,
    store_key,
    write_key_file,
)
from bastion.watermark.report import OwnershipReport, ReportCheck, build_report, verify_report
from bastion.watermark.triggers import (
    TriggerSet,
    TriggerSetHook,
    TriggerSpec,
    make_trigger_set,
    spec_for_dataset,
)
from bastion.watermark.verify import (
    NOT_DETECTED_P,
    OWNED_P,
    Verification,
    binomial_p_value,
    verify_triggers,
)

__all__ = [
    "NOT_DETECTED_P",
    "OWNED_P",
    "ApiMarks",
    "ApiWatermark",
    "EmbedResult",
    "OwnershipReport",
    "ReportCheck",
    "TrainingWatermark",
    "TriggerSet",
    "TriggerSetHook",
    "TriggerSpec",
    "Verification",
    "WatermarkKey",
    "WatermarkRecord",
    "adapter_for",
    "annotate_version",
    "binomial_p_value",
    "build_report",
    "embed",
    "ensure_home_key",
    "fine_tune",
    "generate_key",
    "home_key_ids",
    "home_records",
    "load_home_key",
    "log_commitment",
    "make_record",
    "make_trigger_set",
    "prune_magnitude",
    "read_key_file",
    "read_record",
    "resolve_key",
    "spec_for_dataset",
    "store_key",
    "verify_marks",
    "verify_report",
    "verify_triggers",
    "watermark_hook",
    "write_key_file",
]
