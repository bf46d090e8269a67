#!/usr/bin/env python3
"""luzao against llama.cpp on the same GGUF files, same thread count, alternating runs.

For each model file: prompt processing (pp, tokens/s of one P-token prefill from an empty
context) and generation (tg, N single-token decode steps), as llama-bench measures them; with
--parallel P also batched generation (tgNxP: P sequences decoding together, one token each per
step, aggregate tokens/s; llama-batched-bench's -npl without a shared prompt). luzao
runs `luzao bench`; llama.cpp runs through llama-cpp-python's C API (llama_decode on random
tokens) in two builds, each in its own cached virtual environment:

  avx512  gcc, -DGGML_AVX512=ON (+VNNI, BF16)              ~/.cache/luzao/ref-venv
  amx     clang, the AVX-512 flags plus AMX-INT8/AMX-TILE   ~/.cache/luzao/llama-amx-venv
          (gcc 12 miscompiles llama.cpp's AMX tile set-up; clang builds it. On CPUs without AMX
          this build runs its AVX-512 code.)

Missing environments are built with --setup (pip compiles llama.cpp: 10+ minutes on 2 cores).
Repetitions alternate engine by engine (luzao, avx512, amx, luzao, ...) so that machine noise hits
all alike. The STREAM triad bandwidth is measured with the same thread count, and decode
bandwidth use is weight bytes read per token x tokens/s / triad.

Usage:
  PY=~/.cache/luzao/ref-venv/bin/python        # any python with gguf + numpy
  $PY bench/make_models.py                      # random-weight files (once)
  $PY bench/compare_llamacpp.py [--luzao build/release/luzao] [-t 2] [-p 512] [-n 128]
      [-r 3] [--builds avx512,amx] [--setup] [--markdown docs-table.md] [MODEL.gguf ...]
Without model arguments: every file in ~/.cache/luzao/bench-models plus the real
SmolLM2-135M-Instruct Q4_1 from the luzao model cache.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("LUZAO_CACHE", Path.home() / ".cache" / "luzao"))
ROOT = Path(__file__).resolve().parent.parent
BUILDS = {
    "avx512": dict(venv=CACHE / "ref-venv", cc="gcc", cxx="g++",
                   cmake="-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"),
    "amx": dict(venv=CACHE / "llama-amx-venv", cc="clang", cxx="clang++",
                cmake="-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON "
                      "-DGGML_AMX_INT8=ON -DGGML_AMX_TILE=ON "
                      "'-DCMAKE_C_FLAGS=-D__AMX_INT8__ -D__AMX_TILE__' "
                      "'-DCMAKE_CXX_FLAGS=-D__AMX_INT8__ -D__AMX_TILE__'"),
}
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"

# Runs inside a llama-cpp-python venv: one warm-up, then `reps` pp and tg measurements, as JSON.
LLAMA_RUNNER = r"""
import json, random, sys, time
import llama_cpp as L
path, threads, n_prompt, n_gen, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
n_par = int(sys.argv[6]) if len(sys.argv) > 6 else 0
L.llama_backend_init()
quiet = L.llama_log_callback(lambda level, text, data: None)
L.llama_log_set(quiet, None)
mp = L.llama_model_default_params()
model = L.llama_model_load_from_file(path.encode(), mp)
if not model:
    sys.exit("llama.cpp could not load " + path)
cp = L.llama_context_default_params()
cp.n_ctx = (max(n_prompt, n_gen) + 16) * max(n_par, 1)  # each sequence gets n_ctx / n_seq_max
cp.n_seq_max = max(n_par, 1)
cp.n_batch = 512
cp.n_ubatch = 512
cp.n_threads = threads
cp.n_threads_batch = threads
ctx = L.llama_init_from_model(model, cp)
vocab = L.llama_model_get_vocab(model)
n_vocab = L.llama_vocab_n_tokens(vocab)
batch = L.llama_batch_init(512, 0, max(n_par, 1))
rng = random.Random(42)
mem = L.llama_get_memory(ctx)

def decode(tokens, start):
    for b in range(0, len(tokens), 512):
        chunk = tokens[b:b + 512]
        batch.n_tokens = len(chunk)
        for i, t in enumerate(chunk):
            batch.token[i] = t
            batch.pos[i] = start + b + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(chunk) - 1
        if L.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")
    L.llama_synchronize(ctx)

def pp():
    L.llama_memory_clear(mem, True)
    toks = [rng.randrange(n_vocab) for _ in range(n_prompt)]
    t0 = time.perf_counter()
    decode(toks, 0)
    return n_prompt / (time.perf_counter() - t0)

def tg(n):
    L.llama_memory_clear(mem, True)
    toks = [rng.randrange(n_vocab) for _ in range(n)]
    t0 = time.perf_counter()
    for i, t in enumerate(toks):
        decode([t], i)
    return n / (time.perf_counter() - t0)

def tgp(n):
    L.llama_memory_clear(mem, True)
    t0 = time.perf_counter()
    for i in range(n):
        batch.n_tokens = n_par
        for s in range(n_par):
            batch.token[s] = rng.randrange(n_vocab)
            batch.pos[s] = i
            batch.n_seq_id[s] = 1
            batch.seq_id[s][0] = s
            batch.logits[s] = True
        if L.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")
    L.llama_synchronize(ctx)
    return n * n_par / (time.perf_counter() - t0)

out = {"pp": [], "tg": [], "tgp": []}
if n_par > 1 and n_gen > 0:
    tgp(4)
    out["tgp"] = [tgp(n_gen) for _ in range(reps)]
if n_prompt > 0:
    pp()
    out["pp"] = [pp() for _ in range(reps)]
if n_gen > 0:
    tg(4)
    out["tg"] = [tg(n_gen) for _ in range(reps)]
print(json.dumps(out))
"""

TRIAD_C = r"""
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  const long n = 40L * 1000 * 1000;  /* 3 x 320 MB: far beyond any cache */
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  #pragma omp parallel for
  for (long i = 0; i < n; ++i) { a[i] = 0; b[i] = 1; c[i] = 2; }
  double best = 0;
  for (int rep = 0; rep < 8; ++rep) {
    double t0 = omp_get_wtime();
    #pragma omp parallel for
    for (long i = 0; i < n; ++i) a[i] = b[i] + 3.0 * c[i];
    double gbs = 24.0 * n / (omp_get_wtime() - t0) / 1e9;
    if (gbs > best) best = gbs;
  }
  printf("%.3f %g\n", best, a[n / 2]);
  return 0;
}
"""


def build_venv(name):
    spec = BUILDS[name]
    venv = spec["venv"]
    print(f"[setup] building llama-cpp-python ({name}) into {venv}; this takes a while", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = dict(os.environ, CC=spec["cc"], CXX=spec["cxx"], CMAKE_ARGS=spec["cmake"],
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "numpy", "gguf",
                    LLAMA_CPP_PYTHON], check=True, env=env)


def venv_python(name):
    py = BUILDS[name]["venv"] / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import llama_cpp"],
                                        capture_output=True).returncode == 0
    return py if ok else None


def triad(threads):
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d) / "triad.c", Path(d) / "triad"
        src.write_text(TRIAD_C)
        subprocess.run(["cc", "-O3", "-march=native", "-fopenmp", str(src), "-o", str(exe)],
                       check=True)
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True,
                             env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        return float(out.stdout.split()[0])


def weight_bytes_per_token(path):
    """Bytes of the matrices a decode step reads in full (embedding rows are read one at a time
    unless the embedding is tied to the output)."""
    import gguf
    r = gguf.GGUFReader(str(path))
    names = {t.name for t in r.tensors}
    total = 0
    for t in r.tensors:
        if len(t.shape) < 2:
            continue
        if t.name == "token_embd.weight" and "output.weight" in names:
            continue
        total += int(t.n_bytes)
    return total


def run_luzao(binary, model, threads, n_prompt, n_gen, n_par=0):
    out = {"pp": [], "tg": [], "tgp": []}
    runs = [(n_prompt, 0, 1), (0, n_gen, 1)] + ([(0, n_gen, n_par)] if n_par > 1 else [])
    for p, n, par in runs:
        if p == 0 and n == 0:
            continue
        res = subprocess.run([binary, "bench", "-m", str(model), "-p", str(p), "-n", str(n), "-t",
                              str(threads), "-r", "1", "--parallel", str(par), "--json"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"luzao bench failed on {model}:\n{res.stderr}")
        for row in json.loads(res.stdout):
            key = "pp" if row["n_prompt"] > 0 else ("tgp" if row.get("n_parallel", 1) > 1 else "tg")
            out[key] += row["samples_ts"]
    return out


def run_llama(python, model, threads, n_prompt, n_gen, n_par=0):
    res = subprocess.run([str(python), "-c", LLAMA_RUNNER, str(model), str(threads), str(n_prompt),
                          str(n_gen), "1", str(n_par)], capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt_ts(xs):
    if not xs:
        return "n/a"
    m = statistics.mean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.1f} ± {sd:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--luzao", default=str(ROOT / "build" / "release" / "luzao"))
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--repetitions", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=0,
                    help="also measure batched generation of this many sequences (tgNxP)")
    ap.add_argument("--builds", default="avx512,amx", help="llama.cpp builds to compare against")
    ap.add_argument("--setup", action="store_true", help="build missing llama-cpp-python venvs")
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument("--json", help="also write all samples to this file")
    args = ap.parse_args()

    models = [Path(m) for m in args.models]
    if not models:
        models = sorted((CACHE / "bench-models").glob("*.gguf"))
        real = CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if real.exists():
            models.append(real)
    if not models:
        raise SystemExit("no models: run bench/make_models.py first, or name GGUF files")
    if not Path(args.luzao).exists():
        raise SystemExit(f"{args.luzao} not found: build the release preset or pass --luzao")

    builds = {}
    for name in [b for b in args.builds.split(",") if b]:
        py = venv_python(name)
        if py is None and args.setup:
            build_venv(name)
            py = venv_python(name)
        if py is None:
            print(f"[skip] llama.cpp {name}: no venv at {BUILDS[name]['venv']} (run with --setup)")
            continue
        builds[name] = py

    bw = triad(args.threads)
    print(f"STREAM triad, {args.threads} threads: {bw:.1f} GB/s", flush=True)
    engines = ["luzao"] + [f"llama.cpp {b}" for b in builds]
    results = {}
    for model in models:
        samples = {e: {"pp": [], "tg": [], "tgp": []} for e in engines}
        errors = {}
        for rep in range(args.repetitions):
            for e in engines:
                if e in errors:
                    continue
                if e == "luzao":
                    r = run_luzao(args.luzao, model, args.threads, args.n_prompt, args.n_gen,
                                  args.parallel)
                else:
                    r = run_llama(builds[e.split()[1]], model, args.threads, args.n_prompt,
                                  args.n_gen, args.parallel)
                if "error" in r:
                    errors[e] = r["error"]
                    continue
                samples[e]["pp"] += r["pp"]
                samples[e]["tg"] += r["tg"]
                samples[e]["tgp"] += r.get("tgp", [])
        results[model.name] = {"samples": samples, "errors": errors,
                               "weight_bytes": weight_bytes_per_token(model)}
        print(f"{model.name}: " + "; ".join(
            f"{e} pp {fmt_ts(s['pp'])} tg {fmt_ts(s['tg'])}"
            + (f" tgx{args.parallel} {fmt_ts(s['tgp'])}" if s["tgp"] else "") for e, s in samples.items()
            if e not in errors) + "".join(f"; {e}: {msg}" for e, msg in errors.items()), flush=True)

    pp, tg = f"pp{args.n_prompt}", f"tg{args.n_gen}"
    tgp = f"tg{args.n_gen}x{args.parallel}"
    head = ["model", "engine", f"{pp} t/s", f"{tg} t/s", f"{pp} ratio", f"{tg} ratio", "tg GB/s",
            "tg bw use"]
    if args.parallel > 1:
        head += [f"{tgp} t/s", f"{tgp} ratio", f"{tgp} / {tg}"]
    lines = [f"STREAM triad ({args.threads} threads): {bw:.1f} GB/s; ratios are luzao / engine.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        s = res["samples"]
        lz = s["luzao"]
        for e in engines:
            if e in res["errors"]:
                lines.append(f"| {name} | {e} | error: {res['errors'][e]} |" + " |" * (len(head) - 3))
                continue
            ratio_pp = ratio_tg = ""
            if e != "luzao" and s[e]["pp"] and lz["pp"]:
                ratio_pp = f"{statistics.mean(lz['pp']) / statistics.mean(s[e]['pp']):.2f}x"
            if e != "luzao" and s[e]["tg"] and lz["tg"]:
                ratio_tg = f"{statistics.mean(lz['tg']) / statistics.mean(s[e]['tg']):.2f}x"
            gbs = use = ""
            if s[e]["tg"]:
                g = res["weight_bytes"] * statistics.mean(s[e]["tg"]) / 1e9
                gbs, use = f"{g:.1f}", f"{100 * g / bw:.0f}%"
            row = (f"| {name} | {e} | {fmt_ts(s[e]['pp'])} | {fmt_ts(s[e]['tg'])} | "
                   f"{ratio_pp} | {ratio_tg} | {gbs} | {use} |")
            if args.parallel > 1:
                ratio_p = scale = ""
                if e != "luzao" and s[e]["tgp"] and lz["tgp"]:
                    ratio_p = f"{statistics.mean(lz['tgp']) / statistics.mean(s[e]['tgp']):.2f}x"
                if s[e]["tgp"] and s[e]["tg"]:
                    scale = f"{statistics.mean(s[e]['tgp']) / statistics.mean(s[e]['tg']):.2f}x"
                row += f" {fmt_ts(s[e]['tgp'])} | {ratio_p} | {scale} |"
            lines.append(row)
    table = "\n".join(lines)
    print()
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"triad_gbs": bw, "threads": args.threads,
                                               "results": results}, indent=1))


if __name__ == "__main__":
    main()
