"""Scanner benchmark: bastion vs picklescan vs modelscan on one generated corpus, in the same run.

Corpus (written to a temporary directory):

* malicious — every hand-written payload of ``tests/scan/conftest.py`` (os/subprocess/builtins/runpy/…,
  operator and functools chains, ``numpy.__builtins__`` via STACK_GLOBAL, ``torch.utils.collect_env.run``,
  nested ``pickle.loads``, extension codes, memo tricks …) in every container form (raw pickle p2/p4, torch
  zip incl. manipulated headers, legacy torch and its tar variant, joblib gzip/zlib/object-array, npy/npz
  object arrays, tar.gz, pickle-prefixed zip polyglot), behind misleading extensions;
* benign — torch state dicts and whole ``nn.Module`` pickles (zip and legacy), scikit-learn estimators via
  joblib (plain and compressed) and pickle, numeric npy/npz, safetensors, plus one large benign torch
  checkpoint (``--big-mb``, default 1024 MiB).

Prints detections, false positives, errors and MB/s per tool, and bastion's throughput as a ratio of
picklescan's (the anchor). Run: ``python benchmarks/bench_scan.py [--big-mb 1024]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import pickle
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _craft():
    spec = importlib.util.spec_from_file_location("bastion_scan_craft", ROOT / "tests/scan/conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build_corpus(root: Path, big_mb: int) -> tuple[list[Path], list[Path], Path | None]:
    import joblib
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    craft = _craft()
    bad_dir, good_dir = root / "malicious", root / "benign"
    bad_dir.mkdir()
    good_dir.mkdir()
    malicious: list[Path] = []
    for payload in craft.PAYLOADS:
        for form, (name, build) in sorted(craft.FORMS.items()):
            path = bad_dir / f"{payload.name}__{form}__{name}"
            path.write_bytes(build(payload))
            malicious.append(path)

    benign: list[Path] = []
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 26 * 26, 10)
    )
    for name, obj in (("state_dict", net.state_dict()), ("module", net)):
        torch.save(obj, good_dir / f"{name}.pt")
        torch.save(obj, good_dir / f"{name}_legacy.pt", _use_new_zipfile_serialization=False)
        benign += [good_dir / f"{name}.pt", good_dir / f"{name}_legacy.pt"]
    x, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimators = {
            "logreg": LogisticRegression(max_iter=300).fit(x, y),
            "forest": RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y),
            "scaler": StandardScaler().fit(x),
            "mlp": MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0).fit(x, y),
            "pipeline": Pipeline([("s", StandardScaler()), ("m", LogisticRegression(max_iter=300))]).fit(
                x, y
            ),
        }
    for name, est in estimators.items():
        for suffix, compress in (("joblib", 0), ("joblib.gz", ("gzip", 3))):
            joblib.dump(est, good_dir / f"{name}.{suffix}", compress=compress)
            benign.append(good_dir / f"{name}.{suffix}")
        (good_dir / f"{name}.pkl").write_bytes(pickle.dumps(est, protocol=4))
        benign.append(good_dir / f"{name}.pkl")
    np.save(good_dir / "array.npy", np.random.default_rng(0).random((256, 256)))
    np.savez(good_dir / "arrays.npz", a=np.arange(1000), b=np.eye(32))
    save_file({"w": torch.randn(256, 256)}, good_dir / "weights.safetensors")
    benign += [good_dir / "array.npy", good_dir / "arrays.npz", good_dir / "weights.safetensors"]

    big: Path | None = None
    if big_mb > 0:
        big = good_dir / "big_checkpoint.pt"
        per = 64  # MiB per tensor
        tensors = {f"layer{i}.weight": torch.zeros(per << 18) for i in range(max(1, big_mb // per))}
        torch.save(tensors, big)
        del tensors
        benign.append(big)
    return malicious, benign, big


def tool_bastion() -> Callable[[Path], bool | None]:
    from bastion.scan import Verdict, scan

    def run(path: Path) -> bool | None:
        verdict = scan(paths=[path]).verdict
        return None if verdict is Verdict.error else verdict is Verdict.unsafe

    return run


def tool_picklescan() -> Callable[[Path], bool | None]:
    from picklescan.scanner import scan_file_path

    def run(path: Path) -> bool | None:
        result = scan_file_path(str(path))
        if result.infected_files or result.issues_count:
            return True
        return None if result.scan_err else False

    return run


def tool_modelscan() -> Callable[[Path], bool | None]:
    from modelscan.modelscan import ModelScan

    def run(path: Path) -> bool | None:
        result = ModelScan().scan(str(path))
        if result.get("issues"):
            return True
        return None if result.get("errors") else False

    return run


def measure(
    name: str, fn: Callable[[Path], bool | None], malicious: list[Path], benign: list[Path], big: Path | None
):
    detected = missed_errors = fp = benign_errors = 0
    t_all = 0.0
    nbytes = 0
    missed: list[str] = []
    big_s = None
    for path, is_bad in [(p, True) for p in malicious] + [(p, False) for p in benign]:
        start = time.perf_counter()
        try:
            verdict = fn(path)
        except Exception:  # a crash of the tool counts as "could not scan"
            verdict = None
        elapsed = time.perf_counter() - start
        t_all += elapsed
        nbytes += path.stat().st_size
        if path == big:
            big_s = elapsed
        if is_bad:
            if verdict is True:
                detected += 1
            else:
                missed.append(path.name)
                if verdict is None:
                    missed_errors += 1
        else:
            if verdict is True:
                fp += 1
            elif verdict is None:
                benign_errors += 1
    return {
        "tool": name,
        "detected": detected,
        "missed": len(missed),
        "missed_as_error": missed_errors,
        "false_positives": fp,
        "benign_errors": benign_errors,
        "seconds": t_all,
        "mb_s": nbytes / (1 << 20) / t_all if t_all else float("inf"),
        "big_mb_s": (big.stat().st_size / (1 << 20) / big_s) if big and big_s else None,
        "missed_names": missed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--big-mb", type=int, default=1024, help="size of the large benign checkpoint (0: none)"
    )
    parser.add_argument("--show-missed", action="store_true", help="list the files each tool missed")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        t0 = time.perf_counter()
        malicious, benign, big = build_corpus(Path(tmp), args.big_mb)
        total_mb = sum(p.stat().st_size for p in malicious + benign) / (1 << 20)
        print(
            f"corpus: {len(malicious)} malicious, {len(benign)} benign files, {total_mb:.1f} MiB "
            f"(big checkpoint {args.big_mb} MiB), built in {time.perf_counter() - t0:.1f}s"
        )
        rows = []
        for name, factory in (
            ("bastion", tool_bastion),
            ("picklescan", tool_picklescan),
            ("modelscan", tool_modelscan),
        ):
            fn = factory()
            if big is not None:  # warm the page cache equally for every tool
                with big.open("rb") as fh:
                    while fh.read(64 << 20):
                        pass
            rows.append(measure(name, fn, malicious, benign, big))
    print(
        f"{'tool':<11} {'detected':>9} {'missed':>7} {'(errors)':>8} {'FP':>4} {'benign err':>10} "
        f"{'MB/s all':>9} {'MB/s big':>9} {'seconds':>8}"
    )
    for r in rows:
        big_rate = f"{r['big_mb_s']:.0f}" if r["big_mb_s"] else "-"
        counts = f"{r['detected']:>5}/{len(malicious):<3} {r['missed']:>7} {r['missed_as_error']:>8}"
        rest = f"{r['false_positives']:>4} {r['benign_errors']:>10} {r['mb_s']:>9.0f} {big_rate:>9}"
        print(f"{r['tool']:<11} {counts} {rest} {r['seconds']:>8.2f}")
    anchor = rows[1]
    print(
        f"bastion / picklescan throughput ratio: {rows[0]['mb_s'] / anchor['mb_s']:.2f}x overall"
        + (
            f", {rows[0]['big_mb_s'] / anchor['big_mb_s']:.2f}x on the big checkpoint"
            if anchor["big_mb_s"]
            else ""
        )
    )
    if args.show_missed:
        for r in rows:
            by_form: dict[str, int] = {}
            for name in r["missed_names"]:
                form = name.split("__")[-2] if name.count("__") >= 2 else name
                by_form[form] = by_form.get(form, 0) + 1
            detail = ", ".join(f"{form} {n}" for form, n in sorted(by_form.items()))
            print(f"{r['tool']} missed {r['missed']}" + (f" — by form: {detail}" if detail else ""))


if __name__ == "__main__":
    main()
