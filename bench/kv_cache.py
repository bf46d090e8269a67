#!/usr/bin/env python3
"""Measures the KV cache types (f16, q8_0, f32) on one model for docs/compression.md: perplexity
on ../shared/data/tinyshakespeare.txt and hongloumeng.txt, KL-divergence and top-1 agreement
against the F16 cache over the same tokens, and luzao bench speeds (pp512, tg128 after a 512-token
prompt is not what llama-bench measures: pp512, and tg128 from an empty cache).

  python3 bench/kv_cache.py --luzao build/release/luzao \\
      --model ~/.cache/luzao/models/SmolLM2-135M-Instruct.Q4_1.gguf --work /tmp/kv

Speeds are measured round-robin (every cache type once per round, median of the rounds) so that
a noisy shared machine biases no row. Prints a Markdown table; raw results in WORK/kv.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compression import TEXTS, perplexity, run  # noqa: E402

CACHE_TYPES = ["f16", "q8_0", "f32"]


def bench(luzao: Path, model: Path, cache: str, threads: int) -> dict:
    out = run([luzao, "bench", "-m", model, "-p", "512", "-n", "128", "-r", "1", "-t", threads,
               "--cache-type", cache, "--json"])
    return {r["test"]: r["avg_ts"] for r in json.loads(out.stdout)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--luzao", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    res: dict = {"model": str(args.model), "chunks": args.chunks, "ppl": {}, "speed": {}}
    for name, text in TEXTS.items():
        base_logits = args.work / f"{name}.f16kv.logits"
        for cache in CACHE_TYPES:
            extra = ["--cache-type", cache]
            if cache == "f16":
                extra += ["--save-logits", str(base_logits)]
            else:
                extra += ["--kl-base", str(base_logits)]
            res["ppl"][f"{name}/{cache}"] = perplexity(args.luzao, args.model, text, args.chunks,
                                                       args.threads, extra)
    rounds: dict[str, list[dict]] = {c: [] for c in CACHE_TYPES}
    for _ in range(args.rounds):
        for cache in CACHE_TYPES:
            rounds[cache].append(bench(args.luzao, args.model, cache, args.threads))
    for cache, rs in rounds.items():
        res["speed"][cache] = {t: statistics.median(r[t] for r in rs) for t in rs[0]}
    (args.work / "kv.json").write_text(json.dumps(res, indent=1))

    print("| KV cache | bytes/value | " + " | ".join(
        f"PPL {n} | KLD {n} (p99) | top-1 %" for n in TEXTS) + " | pp512 tok/s | tg128 tok/s |")
    print("|---" * (4 + 3 * len(TEXTS)) + "|")
    for cache in CACHE_TYPES:
        cells = []
        for name in TEXTS:
            r = res["ppl"][f"{name}/{cache}"]
            ppl = f"{r['ppl']:.3f} ± {r['ppl_stderr']:.3f}"
            if cache == "f16":
                cells += [ppl, "base", "base"]
            else:
                cells += [ppl, f"{r['kld_mean']:.5f} ({r['kld_p99']:.4f})",
                          f"{100 * r['top1_agreement']:.1f}"]
        sp = res["speed"][cache]
        size = {"f16": "2", "q8_0": "1.0625", "f32": "4"}[cache]
        pp = next((v for k, v in sp.items() if k.startswith("pp")), 0)
        tg = next((v for k, v in sp.items() if k.startswith("tg")), 0)
        print(f"| {cache} | {size} | " + " | ".join(cells) + f" | {pp:.0f} | {tg:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
