#!/usr/bin/env python3
"""Measures every quantization format luzao offers on one model and writes the table of
docs/compression.md: bits per weight, file size, prompt/generation speed (luzao bench), perplexity
on ../shared/data/tinyshakespeare.txt and hongloumeng.txt, and KL-divergence against the
full-precision base, with and without an importance matrix.

  python3 bench/compression.py --luzao build/release/luzao \\
      --source ~/.cache/luzao/models/SmolLM2-135M-Instruct.Q4_1.gguf --work /tmp/compression

The base is `luzao quantize SOURCE base.gguf F16` (for SmolLM2: its shipped Q4_1 dequantized to
F16, so "full precision" means the Q4_1 weights held exactly). The imatrix is computed on text that
the evaluation does not see: the second halves of both shared texts. Results go to
WORK/results.json and, as a Markdown table, to stdout (or --markdown FILE).
Also times `luzao quantize` against llama.cpp's quantizer (llama-cpp-python's
llama_model_quantize, when --ref-python names a Python that has it) on the same input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXTS = {"tinyshakespeare": REPO.parent / "shared/data/tinyshakespeare.txt",
         "hongloumeng": REPO.parent / "shared/data/hongloumeng.txt"}
# (scheme, with imatrix too?)
FORMATS = [("Q8_0", False), ("Q6_K", False), ("Q5_K_M", False), ("Q5_1", False), ("Q5_0", False),
           ("Q4_K_M", True), ("Q4_K_S", True), ("Q4_1", True), ("Q4_0", True), ("Q3_K_M", True),
           ("Q3_K_S", True), ("Q2_K", True)]
LLAMA_FTYPES = {"Q4_0": 2, "Q4_K_M": 15, "Q8_0": 7, "Q2_K": 10}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-2000:]}")
    return proc


def perplexity(luzao: Path, model: Path, text: Path, chunks: int, threads: int,
               extra: list[str]) -> dict:
    out = run([luzao, "perplexity", "-m", model, "-f", text, "--chunks", chunks, "-t", threads,
               "--json", *extra])
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed(luzao: Path, model: Path, threads: int, reps: int) -> dict:
    out = run([luzao, "bench", "-m", model, "-p", "128", "-n", "32", "-r", reps, "-t", threads,
               "--json"])
    rows = json.loads(out.stdout)
    return {r["test"]: r["avg_ts"] for r in rows}


def quantize_time_llamacpp(python: str, src: Path, dst: Path, ftype: int, threads: int) -> float | None:
    code = ("import sys,ctypes,time,llama_cpp as l\n"
            "p=l.llama_model_quantize_default_params(); p.ftype=int(sys.argv[3]); p.nthread=int(sys.argv[4])\n"
            "t=time.time(); rc=l.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p))\n"
            "print(time.time()-t if rc==0 else -1)\n")
    proc = subprocess.run([python, "-c", code, str(src), str(dst), str(ftype), str(threads)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    v = float(proc.stdout.strip().splitlines()[-1])
    return v if v >= 0 else None


def calibration_text(work: Path) -> Path:
    """The second halves of both texts: the evaluation (first chunks) never sees them."""
    out = work / "calibration.txt"
    parts = []
    for path in TEXTS.values():
        data = path.read_bytes()
        half = data[len(data) // 2:]
        cut = half.find(b"\n")
        parts.append(half[cut + 1:])
    out.write_bytes(b"\n".join(parts))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--luzao", type=Path, default=REPO / "build/release/luzao")
    ap.add_argument("--source", type=Path,
                    default=Path.home() / ".cache/luzao/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--work", type=Path, default=Path("/tmp/luzao-compression"))
    ap.add_argument("--chunks", type=int, default=6, help="perplexity chunks of 512 per text")
    ap.add_argument("--imatrix-chunks", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--bench-reps", type=int, default=3)
    ap.add_argument("--ref-python", default=str(Path.home() / ".cache/luzao/ref-venv/bin/python"))
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--speed-only", action="store_true",
                    help="re-measure pp/tg of every model in WORK/results.json, rows interleaved "
                         "round by round (for a quieter machine), and re-render the table")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    luzao, t = args.luzao, args.threads
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=1))

    base = work / "base-f16.gguf"
    if args.speed_only:
        remeasure_speed(results, work, base, luzao, t, args.bench_reps)
        save()
    if not base.exists():
        run([luzao, "quantize", args.source, base, "F16", "-t", t])
    imatrix = work / "imatrix.gguf"
    if not imatrix.exists():
        run([luzao, "imatrix", "-m", base, "-f", calibration_text(work), "-o", imatrix,
             "--chunks", args.imatrix_chunks, "-t", t])
    n_params = None
    rows = [("F16", False)] + [(f, False) for f, _ in FORMATS] + [(f, True) for f, im in FORMATS if im]
    for scheme, with_imatrix in rows:
        key = scheme + (" + imatrix" if with_imatrix else "")
        if key in results and "tinyshakespeare" in results[key]:
            continue
        model = base if scheme == "F16" else work / f"{scheme}{'-imat' if with_imatrix else ''}.gguf"
        r: dict = {"scheme": scheme, "imatrix": with_imatrix}
        if model != base:
            t0 = time.time()
            run([luzao, "quantize", base, model, scheme, "-t", t,
                 *(["--imatrix", imatrix] if with_imatrix else [])])
            r["quantize_s"] = time.time() - t0
        sp = speed(luzao, model, t, args.bench_reps)
        r.update(pp128=sp.get("pp128"), tg32=sp.get("tg32"))
        r["bytes"] = model.stat().st_size
        for name, text in TEXTS.items():
            logits = work / f"base-{name}.lzl"
            if scheme == "F16":
                res = perplexity(luzao, model, text, args.chunks, t, ["--save-logits", logits])
            else:
                res = perplexity(luzao, model, text, args.chunks, t, ["--kl-base", logits])
            r[name] = res
        results[key] = r
        save()
    # Quantizer speed against llama.cpp's on the same input and thread count.
    if "quantize_speed" not in results and Path(args.ref_python).exists():
        qs = {}
        for scheme, ftype in LLAMA_FTYPES.items():
            t0 = time.time()
            run([luzao, "quantize", base, work / "speed-luzao.gguf", scheme, "-t", t])
            lz = time.time() - t0
            ll = quantize_time_llamacpp(args.ref_python, base, work / "speed-llama.gguf", ftype, t)
            qs[scheme] = {"luzao_s": lz, "llamacpp_s": ll}
        results["quantize_speed"] = qs
        save()
    meta = run([luzao, "bench", "-m", base, "-p", "0", "-n", "1", "-r", "1", "-t", t, "--json",
                "--no-warmup"])
    n_params = json.loads(meta.stdout)[0]["model_n_params"]
    table = render(results, n_params, args)
    if args.markdown:
        args.markdown.write_text(table)
    print(table)
    return 0


def remeasure_speed(results: dict, work: Path, base: Path, luzao: Path, threads: int, reps: int) -> None:
    """Median of `reps` rounds; each round runs every model once, so load changes hit all alike."""
    keys = [k for k in results if k != "quantize_speed"]
    samples: dict[str, list[dict]] = {k: [] for k in keys}
    for _ in range(reps):
        for k in keys:
            r = results[k]
            model = base if r["scheme"] == "F16" else work / f"{r['scheme']}{'-imat' if r['imatrix'] else ''}.gguf"
            samples[k].append(speed(luzao, model, threads, 1))
    for k in keys:
        for test in ("pp128", "tg32"):
            vals = sorted(s[test] for s in samples[k] if s.get(test) is not None)
            results[k][test] = vals[len(vals) // 2]


def render(results: dict, n_params: int, args) -> str:
    f16 = results["F16"]
    lines = ["| format | imatrix | bits/weight | size MiB | pp128 tok/s | tg32 tok/s | "
             "PPL shakespeare | KLD shakespeare (p99) | top-1 % | PPL hongloumeng | "
             "KLD hongloumeng (p99) | top-1 % |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        if key == "quantize_speed":
            continue
        bpw = 8 * r["bytes"] / n_params
        cells = [r["scheme"], "yes" if r["imatrix"] else "", f"{bpw:.2f}",
                 f"{r['bytes'] / 2**20:.1f}", f"{r['pp128']:.0f}", f"{r['tg32']:.1f}"]
        for name in TEXTS:
            p = r[name]
            cells.append(f"{p['ppl']:.3f} ± {p['ppl_stderr']:.3f}")
            if "kld_mean" in p:
                cells.append(f"{p['kld_mean']:.4f} ({p['kld_p99']:.3f})")
                cells.append(f"{100 * p['top1_agreement']:.1f}")
            else:
                cells += ["base", "base"]
        lines.append("| " + " | ".join(cells) + " |")
    qs = results.get("quantize_speed", {})
    if qs:
        lines += ["", "| time to quantize the F16 base to | luzao s | llama.cpp s |", "|---|---|---|"]
        for scheme, v in qs.items():
            ll = f"{v['llamacpp_s']:.2f}" if v["llamacpp_s"] is not None else "n/a"
            lines.append(f"| {scheme} | {v['luzao_s']:.2f} | {ll} |")
    lines.append("")
    lines.append(f"F16 base: pp128 {f16['pp128']:.0f} tok/s, tg32 {f16['tg32']:.1f} tok/s; "
                 f"{args.chunks} chunks of 512 per text, threads {args.threads}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
