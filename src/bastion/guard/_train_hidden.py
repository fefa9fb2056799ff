"""The guard's hidden-layer model (round 7c, opt-in; not shipped): a fastText-style network over the same
hashed features as :func:`bastion.guard._train.fit`. Training only (torch; never imported by the runtime
detector, which scores the exported weights with :mod:`bastion.guard.hidden`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bastion.guard._design import features
from bastion.guard._train import DIM, LENGTH_CAP, LENGTH_FLOOR, NGRAMS, STRIDE, WINDOW, WORD_NGRAMS
from bastion.guard.classifier import GuardModel
from bastion.guard.rules import RULE_NAMES

HIDDEN_DIM = (
    1 << 17
)  # embedding rows: 2^17 x 32 int8 = 4 MiB, 5.6 MB as base64 (the model must stay <= 10 MB)
HIDDEN_EMBED = 32


def fit_hidden(
    rows: Sequence[Mapping[str, Any]],
    *,
    units: int,
    val: Sequence[Mapping[str, Any]] = (),
    embed: int = HIDDEN_EMBED,
    hidden_dim: int = HIDDEN_DIM,
    epochs: int = 12,
    patience: int = 2,
    lr: float = 3e-3,
    batch: int = 256,
    ngram_dropout: float = 0.5,
    wide: bool = False,
    weight_decay: float = 1e-6,
    seed: int = 0,
    length_floor: int = LENGTH_FLOOR,
    log: Any = None,
) -> GuardModel:
    """A fastText-style model over the same hashed features as :func:`fit` (round 7c, opt-in): embedding rows
    of the n-gram buckets summed with the same weights (counts / length norm), one ReLU layer of ``units``,
    a logistic output with the rule hits as linear terms; class-balanced log loss, Adam (sparse for the
    embedding, AdamW with ``weight_decay`` for the dense layers; each n-gram dropped with ``ngram_dropout``
    while training), early stopping on
    the balanced log loss of ``val`` (the epoch with the lowest is kept; without ``val``: ``epochs``).
    torch is needed here only; the result scores with numpy (:class:`bastion.guard.hidden.HiddenLayer`) and
    is returned as it will score after the int8 / float16 round trip. ``wide``: a linear weight per bucket
    beside the hidden layer (wide and deep; the linear model's term plus the hidden part)."""
    import torch

    from bastion.guard.hidden import HiddenLayer, dequantised
    from bastion.guard.normalize import normalize

    def design(part: Sequence[Mapping[str, Any]]) -> tuple[Any, ...]:
        x = features(
            [normalize(str(r["text"])).text for r in part],
            dim=DIM,
            ngrams=NGRAMS,
            word_ngrams=WORD_NGRAMS,
            fold_marks=True,
            cjk_bigrams=True,
            length_cap=LENGTH_CAP,
            length_floor=length_floor,
        ).tocsr()
        ng = x[:, :DIM].tocsr()
        return (
            torch.as_tensor(ng.indptr.astype(np.int64)),
            torch.as_tensor(ng.indices.astype(np.int64)),
            torch.as_tensor(ng.data.astype(np.float32)),
            torch.as_tensor(x[:, DIM:].toarray().astype(np.float32)),
            torch.as_tensor(np.asarray([float(r["label"]) for r in part], dtype=np.float32)),
        )

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # the detector's budget is one core; small batches gain nothing from more
    emb = torch.nn.EmbeddingBag(hidden_dim, embed, mode="sum", sparse=True)
    torch.nn.init.normal_(emb.weight, std=0.05)
    dense = torch.nn.Linear(embed, units)
    out = torch.nn.Linear(units, 1, bias=False)
    rules = torch.nn.Linear(len(RULE_NAMES), 1)
    lin = torch.nn.EmbeddingBag(DIM, 1, mode="sum", sparse=True)  # wide: a linear weight per bucket
    torch.nn.init.zeros_(lin.weight)
    params = [*emb.parameters(), *dense.parameters(), *out.parameters(), *rules.parameters()]
    sparse = [*emb.parameters(), *(lin.parameters() if wide else [])]
    sparse_opt = torch.optim.SparseAdam(sparse, lr=lr)  # only the rows a batch touches
    opt = torch.optim.AdamW(params[1:], lr=lr, weight_decay=weight_decay)

    def logits(d: tuple[Any, ...], idx: np.ndarray) -> Any:
        ptr, ind, wts, rl, _ = d
        t = torch.as_tensor(idx)
        lo, n = ptr[t], ptr[t + 1] - ptr[t]
        offsets = torch.cumsum(n, 0) - n
        sel = torch.repeat_interleave(lo - offsets, n) + torch.arange(int(n.sum()))
        w = wts[sel]
        if emb.training and ngram_dropout > 0:  # drop n-grams at random: no single n-gram carries a text
            w = w * (torch.rand(len(w)) >= ngram_dropout).float() / (1.0 - ngram_dropout)
        v = emb(ind[sel] & (hidden_dim - 1), offsets, per_sample_weights=w)
        z = out(torch.relu(dense(v))) + rules(rl[idx])
        if wide:
            z = z + lin(ind[sel], offsets, per_sample_weights=w)
        return z.squeeze(1)

    def balanced_loss(z: Any, y: Any) -> Any:
        pos = float(y.sum())
        w = torch.where(y > 0, len(y) / (2 * max(pos, 1.0)), len(y) / (2 * max(len(y) - pos, 1.0)))
        return torch.nn.functional.binary_cross_entropy_with_logits(z, y, weight=w)

    tr = design(rows)
    va = design(val) if val else None
    n = len(rows)
    rng = np.random.default_rng(seed)  # reproducible shuffling, not a secret
    best, best_state, bad = math.inf, None, 0
    for epoch in range(epochs):
        for b in np.array_split(rng.permutation(n), max(1, n // batch)):
            opt.zero_grad()
            sparse_opt.zero_grad()
            loss = balanced_loss(logits(tr, b), tr[4][b])
            loss.backward()
            opt.step()
            sparse_opt.step()
        if va is None:
            continue
        emb.eval()
        with torch.no_grad():
            vl = float(balanced_loss(logits(va, np.arange(len(val))), va[4]))
        emb.train()
        if log is not None:
            log(f"epoch {epoch}: val loss {vl:.4f}")
        if vl < best - 1e-4:
            best, bad = vl, 0
            best_state = [p.detach().clone() for p in params]
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        with torch.no_grad():
            for p, b_ in zip(params, best_state, strict=True):
                p.copy_(b_)
    layer = HiddenLayer(
        dim=hidden_dim,
        embedding=emb.weight.detach().numpy().astype(np.float32),
        w1=dense.weight.detach().numpy().T.astype(np.float32),
        b1=dense.bias.detach().numpy().astype(np.float32),
        w2=out.weight.detach().numpy()[0].astype(np.float32),
    )
    return GuardModel(
        dim=DIM,
        ngrams=NGRAMS,
        word_ngrams=WORD_NGRAMS,
        window=WINDOW,
        stride=STRIDE,
        bias=float(rules.bias.detach()[0]),
        rule_weights=rules.weight.detach().numpy()[0].astype(np.float64),
        weights=(
            np.asarray(lin.weight.detach().numpy()[:, 0], dtype=np.float16).astype(np.float64)
            if wide
            else np.zeros(0)
        ),
        thresholds={"user": 0.5, "retrieved": 0.5, "tool": 0.5},
        training={"hidden_units": units, "hidden_embed": embed, "hidden_dim": hidden_dim},
        size_bytes=0,
        fold_marks=True,
        cjk_bigrams=True,
        length_cap=LENGTH_CAP,
        length_floor=length_floor,
        hidden=dequantised(layer),
    )
