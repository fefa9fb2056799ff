"""Per-hit cost of the gateway's in-memory rate limiter (exact weighted sliding log, bastion.serve.ratelimit)
beside ``limits``' strategies over MemoryStorage.

Anchor: a plain deque moving window (exact, unweighted), measured in the same run. The gateway's limiter also
keeps the cost of each hit (rows) and the role lookup; ``rows`` charges 64 rows per hit against a row limit.
Two loads: one identity with a limit that never triggers (what ``bench_gateway.py`` sets, so a moving window
keeps every hit of the last minute), and many identities at the consumer default 100/minute (hits past the
limit are denied). Prints microseconds per hit and the ratio to the anchor.

    .venv/bin/python benchmarks/bench_ratelimit.py [--hits 30000] [--identities 1000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable


def deque_hitter(amount: int, seconds: float) -> Callable[[str], bool]:
    from collections import deque

    windows: dict[str, deque[float]] = {}

    def hit(key: str) -> bool:
        now = time.monotonic()
        w = windows.get(key)
        if w is None:
            w = windows[key] = deque(maxlen=amount)
        while w and w[0] <= now - seconds:
            w.popleft()
        if len(w) >= amount:
            return False
        w.append(now)
        return True

    return hit


def limits_hitter(strategy: str, spec: str) -> tuple[Callable[[str], bool], Callable[[], None]]:
    from limits import parse, storage, strategies

    st = storage.MemoryStorage()
    limiter = getattr(strategies, strategy)(st)
    item = parse(spec)

    def hit(key: str) -> bool:
        return bool(limiter.hit(item, key))

    def close() -> None:
        st.timer.cancel()

    return hit, close


def gateway_hitter(spec: str) -> tuple[Callable[[str], bool], Callable[[], None]]:
    from bastion.serve.config import RateLimitConfig
    from bastion.serve.ratelimit import RateLimiter

    limiter = RateLimiter(config=RateLimitConfig(per_role={"consumer": spec}))

    def hit(key: str) -> bool:
        return limiter.hit(identity=key, role="consumer").allowed

    return hit, limiter.close


def gateway_rows_hitter(spec: str) -> tuple[Callable[[str], bool], Callable[[], None]]:
    from bastion.serve.config import RateLimitConfig
    from bastion.serve.ratelimit import RateLimiter

    amount, per = spec.split("/")
    limiter = RateLimiter(config=RateLimitConfig(rows_per_role={"consumer": f"{int(amount) * 64}/{per}"}))

    def hit(key: str) -> bool:
        return limiter.rows(identity=key, role="consumer", rows=64).allowed

    return hit, limiter.close


def measure(hit: Callable[[str], bool], keys: list[str], hits: int) -> tuple[float, int]:
    n = len(keys)
    allowed = 0
    start = time.perf_counter()
    for i in range(hits):
        allowed += hit(keys[i % n])
    return (time.perf_counter() - start) / hits * 1e6, allowed


def paced(hit: Callable[[str], bool], *, rate: float, seconds: float) -> float:
    """Process CPU time (all threads: the storage's expiry timer counts) per hit at ``rate`` hits/s."""
    n = int(rate * seconds)
    start_cpu = time.process_time()
    start = time.perf_counter()
    for i in range(n):
        hit("client")
        delay = start + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return (time.process_time() - start_cpu) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=30000)
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args()
    loads = [
        ("1 identity, 100000000/minute", "100000000/minute", ["client"]),
        (
            f"{args.identities} identities, 100/minute",
            "100/minute",
            [f"client-{i}" for i in range(args.identities)],
        ),
    ]
    for title, spec, keys in loads:
        amount, per = spec.split("/")
        seconds = {"second": 1.0, "minute": 60.0, "hour": 3600.0}[per]
        anchor, anchor_ok = measure(deque_hitter(int(amount), seconds), keys, args.hits)
        print(f"{title}: {args.hits} hits")
        print(f"  {'deque moving window (anchor)':44s} {anchor:8.2f} us/hit  allowed {anchor_ok}")
        for strategy in (
            "MovingWindowRateLimiter",
            "SlidingWindowCounterRateLimiter",
            "FixedWindowRateLimiter",
        ):
            hit, close = limits_hitter(strategy, spec)
            cost, ok = measure(hit, keys, args.hits)
            close()
            print(f"  {'limits ' + strategy:44s} {cost:8.2f} us/hit  x{cost / anchor:5.1f}  allowed {ok}")
        hit, close = gateway_hitter(spec)
        cost, ok = measure(hit, keys, args.hits)
        close()
        print(
            f"  {'bastion RateLimiter (memory)':44s} {cost:8.2f} us/hit  x{cost / anchor:5.1f}  allowed {ok}"
        )
        hit, close = gateway_rows_hitter(spec)
        cost, ok = measure(hit, keys, args.hits)
        close()
        print(
            f"  {'bastion RateLimiter.rows (64 rows/hit)':44s} {cost:8.2f} us/hit  x{cost / anchor:5.1f}"
            f"  allowed {ok}"
        )

    if args.paced_seconds > 0:
        print(
            f"1 identity, 100000000/minute, paced at {args.rate:.0f} hits/s for {args.paced_seconds:.0f} s: "
            "process CPU per hit (the sleeping loop included)"
        )
        anchor = paced(deque_hitter(100_000_000, 60.0), rate=args.rate, seconds=args.paced_seconds)
        print(f"  {'deque moving window (anchor)':44s} {anchor:8.2f} us/hit")
        for strategy in (
            "MovingWindowRateLimiter",
            "SlidingWindowCounterRateLimiter",
            "FixedWindowRateLimiter",
        ):
            hit, close = limits_hitter(strategy, "100000000/minute")
            cost = paced(hit, rate=args.rate, seconds=args.paced_seconds)
            close()
            print(f"  {'limits ' + strategy:44s} {cost:8.2f} us/hit  +{cost - anchor:7.2f} us")
        hit, close = gateway_hitter("100000000/minute")
        cost = paced(hit, rate=args.rate, seconds=args.paced_seconds)
        close()
        print(f"  {'bastion RateLimiter (memory)':44s} {cost:8.2f} us/hit  +{cost - anchor:7.2f} us")


if __name__ == "__main__":
    main()
