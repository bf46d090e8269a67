#!/usr/bin/env python3
"""Side-by-side speed of `luzao run` and llama.cpp (llama-cpp-python) on one GGUF file.

Both get the same prompt, the same thread count and greedy decoding; runs alternate so that
machine noise hits both alike. Prints prompt and generation tokens/s and the luzao/llama.cpp ratio.

Setup of the llama.cpp side (once; cached):
  python3 -m venv ~/.cache/luzao/ref-venv
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON" \
      ~/.cache/luzao/ref-venv/bin/pip install llama-cpp-python gguf numpy
Run with that venv's python:  ~/.cache/luzao/ref-venv/bin/python bench/run_vs_llamacpp.py -m MODEL
"""
import argparse
import re
import statistics
import subprocess
import time

PROMPT = ("The history of the printing press begins in the fifteenth century, when Johannes "
          "Gutenberg combined movable metal type, oil-based ink and a wooden press adapted from "
          "wine making. Within fifty years")


def run_luzao(binary, model, threads, n):
    out = subprocess.run([binary, "run", "-m", model, "-p", PROMPT, "-n", str(n), "--temp", "0",
                          "-t", str(threads)], capture_output=True, text=True, check=True)
    m = re.search(r"prompt: (\d+) tokens in [\d.]+ s \(([\d.]+) tok/s\); generated: (\d+) tokens, "
                  r"([\d.]+) tok/s", out.stderr)
    if not m:
        raise SystemExit("could not parse luzao timings:\n" + out.stderr)
    return float(m.group(2)), float(m.group(4)), int(m.group(3))


def run_llamacpp(llm, n):
    import numpy as np
    tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    t1 = time.perf_counter()
    generated = 0
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if nxt == llm.token_eos():
            break
        generated += 1
        if generated == n:
            break
        llm.eval([nxt])
    t2 = time.perf_counter()
    steps = max(generated - 1, 1)
    return len(tokens) / (t1 - t0), steps / (t2 - t1), generated


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--luzao", default="build/release/luzao")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", "--repeat", type=int, default=3)
    args = ap.parse_args()
    import llama_cpp
    llm = llama_cpp.Llama(model_path=args.model, n_threads=args.threads, n_threads_batch=args.threads,
                          n_ctx=1024, n_batch=512, logits_all=False, verbose=False)
    res = {"luzao": [], "llama.cpp": []}
    for _ in range(args.repeat):
        res["luzao"].append(run_luzao(args.luzao, args.model, args.threads, args.n))
        res["llama.cpp"].append(run_llamacpp(llm, args.n))
    print(f"model: {args.model}  threads: {args.threads}  llama-cpp-python {llama_cpp.__version__}")
    print(f"{'engine':<10} {'prompt tok/s':>14} {'gen tok/s':>12} {'tokens':>7}")
    med = {}
    for name, rows in res.items():
        pp = statistics.median(r[0] for r in rows)
        tg = statistics.median(r[1] for r in rows)
        med[name] = (pp, tg)
        print(f"{name:<10} {pp:>14.1f} {tg:>12.1f} {rows[0][2]:>7}")
    print(f"ratio luzao/llama.cpp: prompt {med['luzao'][0] / med['llama.cpp'][0]:.2f}x, "
          f"generation {med['luzao'][1] / med['llama.cpp'][1]:.2f}x")


if __name__ == "__main__":
    main()
