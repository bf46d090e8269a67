#!/usr/bin/env python3
"""llama.cpp's perplexity on a text file, through llama-cpp-python, computed the way its
llama-perplexity tool does (tools/perplexity/perplexity.cpp, function perplexity()):

  * the whole text is tokenized once, with BOS when the vocabulary adds one, no special-token
    parsing;
  * it is cut into floor(n_tokens / ctx) non-overlapping chunks of ctx tokens (at least 2 needed);
  * each chunk is evaluated from an empty KV cache, with BOS in place of its first token when the
    vocabulary adds BOS;
  * only positions first = ctx/2 .. ctx-2 are scored, each predicting the next token:
    nll = -(logit[tok] - max - log(sum(exp(logit - max)))), the sum in double;
  * PPL = exp(mean nll); its error is sqrt((mean(nll^2) - mean(nll)^2) / (n - 1)) * PPL.

Run with the reference venv, e.g.
  ~/.cache/luzao/ref-venv/bin/python bench/perplexity_llamacpp.py -m MODEL.gguf \\
      -f ../shared/data/tinyshakespeare.txt --ctx 512 --chunks 20
Prints one JSON object (ppl, ppl_stderr, chunks, scored_tokens, seconds) on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np


def chunk_nlls(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row, as llama.cpp: float exp terms summed in double."""
    logits = logits.astype(np.float32)
    mx = logits.max(axis=1, keepdims=True)
    sum_exp = np.exp(logits - mx).astype(np.float64).sum(axis=1)
    picked = (logits[np.arange(len(targets)), targets] - mx[:, 0]).astype(np.float64)
    return -(picked - np.log(sum_exp))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=-1)
    ap.add_argument("-b", "--batch", type=int, default=512)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    try:
        import llama_cpp
    except ImportError:
        print("perplexity_llamacpp.py: llama_cpp is missing; use ~/.cache/luzao/ref-venv",
              file=sys.stderr)
        return 2

    t0 = time.time()
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=args.ctx, n_batch=min(args.batch, args.ctx),
                          n_threads=args.threads, logits_all=True, verbose=False)
    text = open(args.file, "rb").read()
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)))
    tokens = np.array(llm.tokenize(text, add_bos=True, special=False), dtype=np.int64)
    bos = llm.token_bos()
    ctx = args.ctx
    if len(tokens) < 2 * ctx:
        print(f"need at least {2 * ctx} tokens, the text has {len(tokens)}", file=sys.stderr)
        return 1
    n_chunks = len(tokens) // ctx
    if args.chunks >= 0:
        n_chunks = min(n_chunks, args.chunks)
    first = ctx // 2
    total = total2 = 0.0
    count = 0
    for c in range(n_chunks):
        chunk = tokens[c * ctx:(c + 1) * ctx].copy()
        if add_bos:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk.tolist())
        logits = np.asarray(llm.scores[:ctx], dtype=np.float32)
        nll = chunk_nlls(logits[first:ctx - 1], tokens[c * ctx + first + 1:(c + 1) * ctx])
        total += float(nll.sum())
        total2 += float((nll * nll).sum())
        count += len(nll)
        print(f"[{c + 1}/{n_chunks}]{math.exp(total / count):.4f}", end="," if c + 1 < n_chunks else "\n",
              file=sys.stderr, flush=True)
    mean = total / count
    ppl = math.exp(mean)
    var = total2 / count - mean * mean
    err = math.sqrt(var / (count - 1)) * ppl if var > 0 and count > 1 else 0.0
    print(json.dumps({"model": args.model, "file": args.file, "ctx": ctx, "chunks": n_chunks,
                      "text_tokens": int(len(tokens)), "scored_tokens": count, "ppl": ppl,
                      "ppl_stderr": err, "seconds": time.time() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
