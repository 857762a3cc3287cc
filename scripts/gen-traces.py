#!/usr/bin/env python3
"""Job traces of shapes the built-in ones lack, for `dyno-scaler simulate --trace-file`.

Writes CSV (arrived_at,queue,duration_ms) for one day each, with a fixed seed so
BENCHMARKS.md's figures reproduce:  python3 scripts/gen-traces.py OUT_DIR [SEED]
"""
import os
import random
import sys

DAY = 86_400


def poisson(rng, rate, start, end):
    t = start
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return
        yield t


def hourly_bursts(rng):
    # A cron fan-out on the hour: 600 jobs in 30 s, 2-8 s each; a trickle between.
    for t in poisson(rng, 0.02, 0, DAY):
        yield t, "default", rng.uniform(1000, 4000)
    for h in range(24):
        for _ in range(600):
            yield h * 3600 + rng.uniform(0, 30), "default", rng.uniform(2000, 8000)


def email_campaign(rng):
    # Quiet day, three campaigns that enqueue 20,000 one-second mails within 10 s.
    for t in poisson(rng, 0.01, 0, DAY):
        yield t, "mailers", rng.uniform(500, 1500)
    for start in (9 * 3600 + 17, 13 * 3600 + 1234, 18 * 3600 + 42):
        for _ in range(20_000):
            yield start + rng.uniform(0, 10), "mailers", rng.uniform(600, 1400)


def heavy_tailed(rng):
    # Steady 0.3 jobs/s with Pareto durations (alpha 1.3, min 0.5 s, capped at 1 h).
    for t in poisson(rng, 0.3, 0, DAY):
        d = min(500 * rng.paretovariate(1.3), 3_600_000)
        yield t, "default", d


def sparse_long(rng):
    # A 20-60 minute export every ~3 hours and nothing else.
    for t in poisson(rng, 1 / 10_800, 0, DAY):
        yield t, "exports", rng.uniform(1_200_000, 3_600_000)


SHAPES = {
    "hourly-bursts": hourly_bursts,
    "email-campaign": email_campaign,
    "heavy-tailed": heavy_tailed,
    "sparse-long": sparse_long,
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    os.makedirs(out, exist_ok=True)
    for name, shape in SHAPES.items():
        rng = random.Random(f"{name}-{seed}")
        rows = sorted(shape(rng))
        with open(os.path.join(out, f"{name}.csv"), "w") as f:
            f.write("arrived_at,queue,duration_ms\n")
            for t, queue, ms in rows:
                f.write(f"{t:.3f},{queue},{int(ms)}\n")
        print(f"{name}: {len(rows)} jobs")


if __name__ == "__main__":
    main()
