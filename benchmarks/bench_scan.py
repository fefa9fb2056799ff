"""Scanner benchmark: bastion vs picklescan vs modelscan on one generated corpus, in the same run.

Corpus (written to a temporary directory):

* malicious — every hand-written payload of ``tests/scan/conftest.py`` (os/subprocess/builtins/runpy/…,
  operator and functools chains, ``numpy.__builtins__`` via STACK_GLOBAL, ``torch.utils.collect_env.run``,
  nested ``pickle.loads``, extension codes, memo tricks …) in every container form (raw pickle p2/p4, torch
  zip incl. manipulated headers, legacy torch and its tar variant, joblib gzip/zlib/object-array, npy/npz
  object arrays, tar.gz, pickle-prefixed zip polyglot), behind misleading extensions;
* benign — torch state dicts and whole ``nn.Module`` pickles (zip and legacy), scikit-learn estimators via
  joblib (plain and compressed) and pickle, an opcode-heavy 4 MB vocabulary pickle, numeric npy/npz,
  safetensors, plus one large benign torch checkpoint (``--big-mb``, default 1024 MiB).

Prints detections, false positives, errors and MB/s per tool, and bastion's throughput as a ratio of
picklescan's (the anchor). Then, in the same run, detection by bastion, picklescan, modelscan and fickling
(``is_likely_safe``, what ``fickling --check-safety`` runs) on the project corpus and on a corpus rebuilt from
the other tools' own deny lists, each with misleading and with natural extensions (issue 22 item 6), and
``safe_load`` against ``torch.load(weights_only=True)`` on one checkpoint (``--load-mb``).
Run: ``python benchmarks/bench_scan.py [--big-mb 1024] [--load-mb 1024]``.
"""

from __future__ import annotations

import argparse
import gzip
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
    if (
        str(ROOT) not in sys.path
    ):  # the crafting helpers import the test suite's shared builders (tests._support)
        sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("bastion_scan_craft", ROOT / "tests/scan/conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


#: the extension each form's loader would expect (the control run of issue 22 item 6)
NATURAL = {
    "pickle-p2": "model.pkl",
    "pickle-p4": "model.pkl",
    "torch-zip": "model.pt",
    "torch-zip-renamed-local-header": "model.pt",
    "torch-zip-descriptor-flag": "model.pt",
    "torch-zip-bad-crc": "model.pt",
    "torch-legacy": "model.pt",
    "torch-legacy-tar": "model.tar",
    "joblib-gzip": "model.joblib",
    "joblib-zlib": "model.joblib",
    "joblib-object-array": "model.joblib",
    "npy-object": "array.npy",
    "npz-object": "arrays.npz",
    "tar-gz": "bundle.tar.gz",
    "polyglot-pickle-zip": "model.pkl",
}


def build_others(root: Path, natural: bool) -> list[Path]:
    """Malicious files from the other tools' own published deny lists, rebuilt here (nothing vendored).

    Each (module, name) that picklescan (``_unsafe_globals``), modelscan (``unsafe_globals`` CRITICAL/HIGH)
    and fickling (``UNSAFE_IMPORTS``, ``UnsafeImportsML``) name becomes one pickle that imports and calls it,
    in four forms (raw pickle, torch zip, gzip joblib, npy object array). Whole-module entries use a public
    callable of that module when it imports, else ``load``.
    """
    import importlib

    import fickling.analysis as fa
    from fickling.fickle import UNSAFE_IMPORTS
    from modelscan.settings import DEFAULT_SETTINGS
    from picklescan.scanner import _unsafe_globals

    craft = _craft()
    pairs: set[tuple[str, str]] = set()

    def add(module: str, names: object) -> None:
        if names == "*" or names is None:
            name = "load"
            try:
                mod = importlib.import_module(module)
                name = next(
                    (n for n in sorted(vars(mod)) if not n.startswith("_") and callable(vars(mod)[n])), name
                )
            except Exception:  # not importable here: keep the placeholder name
                pass
            pairs.add((module, name))
        else:
            pairs.update((module, n) for n in names)  # type: ignore[attr-defined]

    for module, names in _unsafe_globals.items():
        add(module, names)
    for level in ("CRITICAL", "HIGH"):
        for module, names in DEFAULT_SETTINGS["unsafe_globals"][level].items():
            add(module, names)
    for module in UNSAFE_IMPORTS:
        add(module, "*")
    for module, names in fa.UnsafeImportsML.UNSAFE_IMPORTS.items():
        add(module, list(names))
    for module in fa.UnsafeImportsML.UNSAFE_MODULES:
        add(module, "*")
    out = root / ("others-natural" if natural else "others-misleading")
    out.mkdir()
    forms = {
        "pickle": ("model.pkl", "model.txt", lambda pkl: pkl),
        "torch-zip": ("model.pt", "model.json", craft.torch_zip),
        "joblib-gzip": ("model.joblib", "model.png", gzip.compress),
        "npy-object": ("array.npy", "array.safetensors", craft.npy_object),
    }
    files: list[Path] = []
    for module, name in sorted(pairs):
        if not all(part.isidentifier() for part in f"{module}.{name}".split(".")):
            continue
        pkl = craft.wrap(craft.call(craft.g(module, name, 2), craft.s("x")), 2)
        for form, (good, bad, build) in forms.items():
            path = out / f"{module}.{name}__{form}__{good if natural else bad}"
            path.write_bytes(build(pkl))
            files.append(path)
    return files


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
    natural_dir = root / "malicious-natural"
    natural_dir.mkdir()
    for payload in craft.PAYLOADS:
        for form, (name, build) in sorted(craft.FORMS.items()):
            path = bad_dir / f"{payload.name}__{form}__{name}"
            path.write_bytes(build(payload))
            malicious.append(path)
            (natural_dir / f"{payload.name}__{form}__{NATURAL[form]}").write_bytes(path.read_bytes())

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
    vocab = {f"tok{i}": (i, f"piece{i}", 0.5) for i in range(100_000)}  # opcode-heavy, like a tokenizer
    (good_dir / "vocab.pkl").write_bytes(
        pickle.dumps({"vocab": vocab, "merges": list(range(200_000))}, protocol=4)
    )
    benign.append(good_dir / "vocab.pkl")
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


def tool_fickling() -> Callable[[Path], bool | None]:
    """``fickling --check-safety`` through its Python API (``is_likely_safe``)."""
    import fickling

    def run(path: Path) -> bool | None:
        # fickling prints warnings; its verdicts change when stdout is redirected, so it is left alone
        return not fickling.is_likely_safe(str(path))

    return run


def detection(
    tools: dict[str, Callable[[Path], bool | None]], files: list[Path]
) -> dict[str, tuple[int, int]]:
    """(detected, could not scan) per tool over malicious ``files``."""
    out = {}
    for name, fn in tools.items():
        hit = err = 0
        for path in files:
            try:
                verdict = fn(path)
            except Exception:  # a crash of the tool counts as "could not scan"
                verdict = None
            hit += verdict is True
            err += verdict is None
        out[name] = (hit, err)
    return out


def bench_load(root: Path, load_mb: int, repeat: int) -> tuple[float, float, float, float]:
    """Best-of-``repeat`` wall and CPU seconds (process time: user + system) of safe_load and of
    torch.load(weights_only=True) on one checkpoint, interleaved; each call's result is released before the
    next."""
    import torch

    from bastion.scan import safe_load

    path = root / "load_checkpoint.pt"
    per = 64
    torch.save({f"layer{i}.weight": torch.randn(per << 18) for i in range(max(1, load_mb // per))}, path)
    best = {"safe": [float("inf")] * 2, "torch": [float("inf")] * 2}

    def timed(which: str, load: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        loaded = load()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best[which] = [min(best[which][0], wall), min(best[which][1], cpu)]
        del loaded

    for _ in range(repeat):
        timed("torch", lambda: torch.load(path, map_location="cpu", weights_only=True))
        timed("safe", lambda: safe_load(path))
    path.unlink()
    return best["safe"][0], best["torch"][0], best["safe"][1], best["torch"][1]


def _like_for_like(path: Path) -> bool:
    """Benign files picklescan fully analyses too (torch zip/legacy, raw pickles, npz); it skips or errors on
    joblib files, so comparing speed there would compare work against no work."""
    return path.suffix in (".pt", ".pkl", ".npz")


def measure(
    tools: dict[str, Callable[[Path], bool | None]],
    malicious: list[Path],
    benign: list[Path],
    big: Path | None,
    repeat: int,
) -> list[dict]:
    """Every file through every tool, interleaved (load changes hit all tools alike), best of ``repeat``."""
    rows = {
        name: {
            "tool": name,
            "detected": 0,
            "missed_as_error": 0,
            "false_positives": 0,
            "benign_errors": 0,
            "seconds": 0.0,
            "benign_s": 0.0,
            "like_s": 0.0,
            "big_s": None,
            "missed_names": [],
        }
        for name in tools
    }
    nbytes = benign_bytes = like_bytes = 0
    for path, is_bad in [(p, True) for p in malicious] + [(p, False) for p in benign]:
        nbytes += path.stat().st_size
        benign_bytes += 0 if is_bad else path.stat().st_size
        like_bytes += path.stat().st_size if not is_bad and _like_for_like(path) else 0
        for name, fn in tools.items():
            best = float("inf")
            verdict: bool | None = None
            for _ in range(repeat):
                start = time.perf_counter()
                try:
                    verdict = fn(path)
                except Exception:  # a crash of the tool counts as "could not scan"
                    verdict = None
                best = min(best, time.perf_counter() - start)
            row = rows[name]
            row["seconds"] += best
            if not is_bad:
                row["benign_s"] += best
                if _like_for_like(path):
                    row["like_s"] += best
            if path == big:
                row["big_s"] = best
            if is_bad:
                if verdict is True:
                    row["detected"] += 1
                else:
                    row["missed_names"].append(path.name)
                    row["missed_as_error"] += verdict is None
            elif verdict is True:
                row["false_positives"] += 1
            elif verdict is None:
                row["benign_errors"] += 1
    out = []
    for row in rows.values():
        row["missed"] = len(row["missed_names"])
        row["mb_s"] = nbytes / (1 << 20) / row["seconds"]
        row["benign_mb_s"] = benign_bytes / (1 << 20) / row["benign_s"]
        row["like_mb_s"] = like_bytes / (1 << 20) / row["like_s"]
        row["big_mb_s"] = big.stat().st_size / (1 << 20) / row["big_s"] if big and row["big_s"] else None
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--big-mb", type=int, default=1024, help="size of the large benign checkpoint (0: none)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings per file and tool")
    parser.add_argument("--show-missed", action="store_true", help="list the files each tool missed")
    parser.add_argument(
        "--load-mb", type=int, default=1024, help="checkpoint size for safe_load vs torch.load"
    )
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
        tools = {"bastion": tool_bastion(), "picklescan": tool_picklescan(), "modelscan": tool_modelscan()}
        if big is not None:  # warm the page cache once, for every tool
            with big.open("rb") as fh:
                while fh.read(64 << 20):
                    pass
        rows = measure(tools, malicious, benign, big, args.repeat)
        tools["fickling"] = tool_fickling()
        natural = sorted((Path(tmp) / "malicious-natural").iterdir())
        control = {
            "project corpus, misleading extensions": detection(tools, malicious),
            "project corpus, natural extensions": detection(tools, natural),
            "others' deny lists, misleading extensions": detection(
                tools, build_others(Path(tmp), natural=False)
            ),
            "others' deny lists, natural extensions": detection(tools, build_others(Path(tmp), natural=True)),
        }
        sizes = {
            "project corpus, misleading extensions": len(malicious),
            "project corpus, natural extensions": len(natural),
            "others' deny lists, misleading extensions": len(
                list((Path(tmp) / "others-misleading").iterdir())
            ),
            "others' deny lists, natural extensions": len(list((Path(tmp) / "others-natural").iterdir())),
        }
        load = bench_load(Path(tmp), args.load_mb, args.repeat) if args.load_mb > 0 else None
    print(
        f"{'tool':<11} {'detected':>9} {'missed':>7} {'(errors)':>8} {'FP':>4} {'benign err':>10} "
        f"{'MB/s all':>9} {'MB/s benign':>11} {'MB/s big':>9} {'seconds':>8}"
    )
    for r in rows:
        big_rate = f"{r['big_mb_s']:.0f}" if r["big_mb_s"] else "-"
        counts = f"{r['detected']:>5}/{len(malicious):<3} {r['missed']:>7} {r['missed_as_error']:>8}"
        rates = f"{r['mb_s']:>9.0f} {r['benign_mb_s']:>11.0f} {big_rate:>9}"
        rest = f"{r['false_positives']:>4} {r['benign_errors']:>10} {rates}"
        print(f"{r['tool']:<11} {counts} {rest} {r['seconds']:>8.2f}")
    anchor = rows[1]
    print(
        f"bastion / picklescan throughput ratio: {rows[0]['mb_s'] / anchor['mb_s']:.2f}x overall, "
        f"{rows[0]['benign_mb_s'] / anchor['benign_mb_s']:.2f}x on the benign models, "
        f"{rows[0]['like_mb_s'] / anchor['like_mb_s']:.2f}x on the benign files picklescan fully analyses too"
        + (
            f", {rows[0]['big_mb_s'] / anchor['big_mb_s']:.2f}x on the big checkpoint"
            if anchor["big_mb_s"]
            else ""
        )
    )
    print("detection (detected / files, could-not-scan in parentheses), same run:")
    for corpus, result in control.items():
        cells = ", ".join(f"{t} {hit}/{sizes[corpus]} ({err})" for t, (hit, err) in result.items())
        print(f"  {corpus}: {cells}")
    if load is not None:
        safe_s, torch_s, safe_cpu, torch_cpu = load
        print(
            f"safe_load of a {args.load_mb} MiB checkpoint: {safe_s:.3f}s vs torch.load(weights_only=True) "
            f"{torch_s:.3f}s: {safe_s / torch_s:.2f}x wall; CPU {safe_cpu:.3f}s vs {torch_cpu:.3f}s: "
            f"{safe_cpu / max(torch_cpu, 1e-9):.2f}x (best of {args.repeat}, interleaved)"
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
