#!/usr/bin/env python3
"""Writes a request trace for `luzao simulate --trace`: CSV lines
arrival_s,prompt_tokens,output_tokens,prefix_group with a rate that swings sinusoidally around
--rps (a compressed day), log-normal prompt and output lengths and Zipf-distributed shared prefixes.

    python3 bench/pool_sim_trace.py --rps 2000 --duration 120 > trace.csv
    luzao simulate --devices 1000 --vendors 3 --trace trace.csv --withdraw-vendor nvidia --at 60
"""
from __future__ import annotations

import argparse
import math
import random
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rps", type=float, default=100, help="mean arrivals per second")
    ap.add_argument("--duration", type=float, default=60, help="seconds of arrivals")
    ap.add_argument("--swing", type=float, default=0.5, help="rate amplitude as a fraction of --rps")
    ap.add_argument("--period", type=float, default=60, help="seconds per rate cycle")
    ap.add_argument("--prompt", type=float, default=512, help="median prompt tokens")
    ap.add_argument("--output", type=float, default=128, help="median output tokens")
    ap.add_argument("--prefixes", type=int, default=64, help="shared prefix groups (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.rps <= 0 or a.duration <= 0 or not 0 <= a.swing < 1:
        ap.error("--rps and --duration must be positive and --swing in [0, 1)")
    rng = random.Random(a.seed)
    peak = a.rps * (1 + a.swing)
    weights = [1 / (k + 1) for k in range(a.prefixes)]
    out = sys.stdout
    out.write("arrival_s,prompt_tokens,output_tokens,prefix_group\n")
    t = 0.0
    while True:
        # Thinning (Lewis-Shedler): candidates at the peak rate, kept with probability rate/peak.
        t += rng.expovariate(peak)
        if t >= a.duration:
            break
        rate = a.rps * (1 + a.swing * math.sin(2 * math.pi * t / a.period))
        if rng.random() * peak > rate:
            continue
        prompt = max(1, round(rng.lognormvariate(math.log(a.prompt), 0.6)))
        output = max(1, round(rng.lognormvariate(math.log(a.output), 0.6)))
        group = rng.choices(range(a.prefixes), weights)[0] if a.prefixes else ""
        out.write(f"{t:.4f},{prompt},{output},{group}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
