#!/usr/bin/env python3
"""Prints BENCHMARKS.md's table of every strategy against the oracle.

    python3 scripts/oracle-table.py [BINARY] [TRACE.csv ...]

BINARY defaults to target/release/dyno-scaler; the traces to the built-in ones plus every CSV in
../shared/traces/real/. Each trace runs under the three worker shapes `--concurrency 5`, `--concurrency 10` and
`--max-workers 20` (the other settings at their defaults), through `simulate --json`.
"""

import glob
import json
import os
import subprocess
import sys

SHAPES = [["--concurrency", "5"], ["--concurrency", "10"], ["--max-workers", "20"]]


def runs(binary, files):
    for shape in SHAPES:
        for source in [[]] + [["--trace-file", f] for f in files]:
            out = subprocess.run(
                [binary, "simulate", "--json", *source, *shape], check=True, capture_output=True, text=True
            ).stdout
            for trace in json.loads(out)["traces"]:
                yield " ".join(shape), trace


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/dyno-scaler"
    here = os.path.dirname(os.path.abspath(__file__))
    files = sys.argv[2:] or sorted(glob.glob(os.path.join(here, "..", "..", "shared", "traces", "real", "*.csv")))
    print("| trace | shape | strategy | dyno-h | cost $ | x oracle | p50 s | p95 s | p99 s | interrupted |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    worst = []
    for shape, trace in runs(binary, files):
        first = True
        for r in trace["results"]:
            ratio = r.get("cost_vs_oracle")
            name = r["strategy"]
            bold = "**" if name in ("dyno-scaler defaults", "oracle") else ""
            print(
                "| %s | %s | %s%s%s | %.2f | %.2f | %s | %.1f | %.1f | %.1f | %d |"
                % (
                    trace["trace"] if first else "",
                    shape if first else "",
                    bold,
                    name,
                    bold,
                    r["dyno_hours"],
                    r["cost"],
                    "-" if ratio is None else "%.2f" % ratio,
                    r["wait_p50"],
                    r["wait_p95"],
                    r["wait_p99"],
                    r["interrupted"],
                )
            )
            first = False
            if name == "dyno-scaler defaults" and ratio is not None:
                worst.append((ratio, trace["trace"], shape))
    worst.sort(reverse=True)
    print()
    print("The default's cost over the oracle's, highest first:")
    print(", ".join("%s `%s` %.2f" % (t, s, x) for x, t, s in worst))


if __name__ == "__main__":
    main()
