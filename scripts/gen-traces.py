#!/usr/bin/env python3
"""Job traces of shapes the built-in ones lack, for `dyno-scaler simulate --trace-file`.

Writes CSV (arrived_at,queue,duration_ms) for one day each, with a fixed seed so
BENCHMARKS.md's figures reproduce:  python3 scripts/gen-traces.py OUT_DIR [SEED]
"""
import math
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


def diurnal_week(rng):
    # Five days of web-driven load following the day (Shahrad et al., ATC 2020: invocation rates are strongly
    # diurnal, peak about 3x the trough; execution times roughly log-normal with a median near 1 s), plus a
    # 2,000-job batch within a minute at 02:00 every night (a daily timer trigger).
    import math
    days = 5
    t = 0.0
    peak = 0.6
    while True:
        t += rng.expovariate(peak)
        if t >= days * DAY:
            break
        hour = (t % DAY) / 3600
        rate = 0.2 + 0.4 * (1 + math.sin((hour - 8) / 24 * 2 * math.pi)) / 2
        if rng.random() < rate / peak:  # thinning
            yield t, "default", min(rng.lognormvariate(math.log(1000), 1.0), 600_000)
    for d in range(days):
        for _ in range(2000):
            yield d * DAY + 2 * 3600 + rng.uniform(0, 60), "batch", rng.uniform(1000, 5000)


def quarter_hour_cron(rng):
    # Two days of timer-triggered fan-outs at :00, :15, :30, :45 (periodic invocations on round periods are common
    # in the Azure Functions traces): 150 jobs of 0.5-3 s within 5 s, over 0.05 jobs/s of background work.
    for t in poisson(rng, 0.05, 0, 2 * DAY):
        yield t, "default", rng.uniform(200, 2000)
    for q in range(2 * 24 * 4):
        for _ in range(150):
            yield q * 900 + rng.uniform(0, 5), "cron", rng.uniform(500, 3000)


def pareto_arrivals(rng):
    # A day of heavy-tailed inter-arrival times (Pareto, alpha 1.5, mean 5 s: long silences between clumps) with
    # log-normal durations (median 1 s, sigma 1), the shape on which the seed's in-app reaction once beat the
    # daemon's poll.
    t = 0.0
    while True:
        t += (5.0 / 3.0) * rng.paretovariate(1.5)
        if t >= DAY:
            return
        yield t, "default", min(1000 * rng.lognormvariate(0.0, 1.0), 600_000)


def rate_stream(rng, rate, end, duration):
    # Poisson arrivals at the time-varying `rate(t)` (thinning under its maximum `rate(None)`).
    top = rate(None)
    for t in poisson(rng, top, 0, end):
        if rng.random() * top <= rate(t):
            yield t, "default", duration(rng)


def steady_stream(rng):
    # Two hours of 3 jobs/s of exponential 5 s jobs: a stream that keeps every worker busy at every heartbeat.
    return rate_stream(rng, lambda t: 3.0, 7200, lambda r: r.expovariate(1 / 5000) + 1)


def rate_steps(rng):
    # Two hours of 15-minute steps between 1 and 8 jobs/s, log-normal jobs (median 3.3 s).
    steps = [1, 8, 3, 6, 2, 8, 1, 5]
    rate = lambda t: 8.0 if t is None else steps[int(t // 900) % len(steps)]
    return rate_stream(rng, rate, 7200, lambda r: r.lognormvariate(1.2, 0.8) * 1000 + 1)


def sine_stream(rng):
    # Three hours of a rate swinging between 0.5 and 7.5 jobs/s (period about an hour), jobs of 1-15 s.
    rate = lambda t: 7.5 if t is None else 4 + 3.5 * math.sin(t / 600)
    return rate_stream(rng, rate, 10800, lambda r: r.uniform(1000, 15000))


def surges(rng):
    # Two hours of 2 jobs/s with a 2-minute surge to 12 jobs/s every 20 minutes, exponential 3 s jobs.
    rate = lambda t: 12.0 if t is None or t % 1200 < 120 else 2.0
    return rate_stream(rng, rate, 7200, lambda r: r.expovariate(1 / 3000) + 1)


SHAPES = {
    "hourly-bursts": hourly_bursts,
    "email-campaign": email_campaign,
    "heavy-tailed": heavy_tailed,
    "sparse-long": sparse_long,
    "diurnal-week": diurnal_week,
    "quarter-hour-cron": quarter_hour_cron,
    "pareto-arrivals": pareto_arrivals,
    "steady-stream": steady_stream,
    "rate-steps": rate_steps,
    "sine-stream": sine_stream,
    "surges": surges,
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
