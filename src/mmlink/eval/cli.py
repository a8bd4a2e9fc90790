"""``mmlink score``, ``mmlink eval`` and ``mmlink report``: their arguments and what each runs (`add_parsers`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmlink.models import SAM_MODES
from mmlink.runtime import (DEVICE_HELP, DTYPE_HELP, DTYPE_NAMES, PLAIN_GENERATE_HELP, QUANTIZE_HELP,
                            QUANTIZE_SCHEMES)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_score(sub)
    _add_eval(sub)
    _add_report(sub)


SCORE_EPILOG = """
files:
  --pred  JSONL, one {"id": ..., "text": "..."} per line (other fields ignored; empty text allowed, scores 0)
  --ref   JSONL, one {"id": ..., "refs": ["...", ...]} per line (at least one non-empty reference each);
          default: the "refs" of the --pred lines (mmlink eval's predictions.jsonl carries them)
  --task  only the lines of that task (mmlink eval's predictions.jsonl holds every task of a run)
  Ids are compared as strings (1 and "1" are the same id); both files must have the same ids, each once.

output:
  one JSON object on stdout, scores x 100: {"BLEU-4": x, "ROUGE-L": y, "CIDEr": z, "n": n}
  (only the keys of --metrics, plus n). BLEU is corpus-level; CIDEr is CIDEr-D whose IDF is computed over the
  evaluated set, so score whole splits: sets under --min-cider-set items, or whose references are all the same,
  are refused when cider is asked for.

tokenization:
  simple  SAM's script: lowercase, punctuation stripped, whitespace split (default)
  ptb     pycocoevalcap's PTB tokenizer, as COCOEvalCap (needs java on PATH)

examples:
  mmlink score --pred pred.jsonl --ref ref.jsonl
  mmlink score --pred pred.jsonl --ref ref.jsonl --tokenize ptb --metrics bleu4,cider
  mmlink score --pred runs/eval/mini/predictions.jsonl --task change_caption"""


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="caption metrics (BLEU-4, ROUGE-L, CIDEr) of predictions against references, via pycocoevalcap",
        description="Score predicted captions against references with pycocoevalcap's BLEU, ROUGE-L and CIDEr-D "
        "scorers; prints one JSON object with the scores x 100.",
        epilog=SCORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pred", required=True, metavar="FILE", help="predictions JSONL ({\"id\", \"text\"} lines)")
    p.add_argument("--ref", metavar="FILE",
                   help="references JSONL ({\"id\", \"refs\"} lines; default: the refs of the --pred lines)")
    p.add_argument("--task", metavar="T", help="score only this task's lines (an mmlink eval predictions.jsonl)")
    p.add_argument("--tokenize", choices=["simple", "ptb"], default="simple",
                   help="simple (SAM's script, default) or ptb (PTB tokenizer, needs java)")
    p.add_argument("--metrics", default="bleu4,rougeL,cider", metavar="LIST",
                   help="comma-separated: bleu1, bleu2, bleu3, bleu4, rougeL, cider (default bleu4,rougeL,cider)")
    p.add_argument("--min-cider-set", type=int, default=10, metavar="N",
                   help="refuse CIDEr on fewer than N items (default 10; 0 turns the CIDEr checks off)")
    p.set_defaults(func=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    import json
    import warnings

    from mmlink.metrics import score_files

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = score_files(args.pred, args.ref, tokenize=args.tokenize, metrics=args.metrics,
                             min_cider_set=args.min_cider_set if args.min_cider_set > 0 else None, task=args.task)
    for w in caught:
        print(f"mmlink score: warning: {w.message}", file=sys.stderr)
    print(json.dumps(result))
    return 0

EVAL_EPILOG = """tasks (data: world = synthesized test set; released = --data-root, layouts in docs/evaluation.md):
{tasks}

examples:
  mmlink eval --model mini --task group_caption --task storytelling --task change_caption --out runs/eval/mini
  mmlink eval --model mini --task bison --task eqben --limit 200 --out runs/eval/closed --option-scoring mean
  mmlink eval --model mini --task vqa_options --out runs/eval/vqa --option-scoring generate --blind
  mmlink eval --model runs/my_ckpt --task cad_qa --judge-url http://localhost:8000/v1 --judge-model qwen --out o
  mmlink eval --model mini --task group_caption --data group_caption=my/data.jsonl --out runs/eval/mine
  mmlink eval --model /ckpt/instructblip-vicuna-7b --task vist --data-root /data/vist --out runs/eval/vist
  mmlink eval --model /ckpt/llava --task muirbench --task blink --data-root /data --out runs/eval/multi
  mmlink eval --model mini --task sam,cadvi --limit 50 --out runs/eval/papers --blind
  mmlink eval --config my_eval.yaml --limit 20      # model, task, out, data_root, ... from the file

outputs in --out: predictions.jsonl (appended per batch; a re-run skips finished items), judgements.jsonl,
metrics.json (model, settings, config, commit, seed, scores, 95% bootstrap intervals "ci"), report.md (tables in
the papers' layout); with --blind also blind/predictions.jsonl and, per task, "blind", "gap" and "gap_ci"."""


def _root_pair(text: str) -> tuple[str, str]:
    task, sep, path = text.partition("=")
    if sep and task and path and "/" not in task and "\\" not in task:
        return task, path
    return "*", text


def _task_line(name: str) -> str:
    from mmlink.eval.tasks import EVAL_TASKS

    t = EVAL_TASKS.get(name)
    data = "/".join(d for d, on in (("world", t.world_task), ("released", t.reader)) if on) or "--data"
    return f"  {name:<22} {t.kind:<10} {data:<14} {t.description}"


def _data_pair(text: str) -> tuple[str, str]:
    task, sep, path = text.partition("=")
    if not sep or not task or not path:
        raise argparse.ArgumentTypeError(f"expected TASK=PATH, got {text!r}")
    return task, path


BLIND_HELP = ("blind control: answer the same items a second time with every image replaced by a flat gray "
              "image of the processor's input size in the vision tower's normalisation mean (so the normalised "
              "pixels are 0: no visual signal); its predictions go to OUT/blind/ (resumable), and metrics.json and "
              "report.md add per task the blind scores and the gap real - blind with a paired 95%% bootstrap "
              "interval. The real pass runs too, or is reused from OUT")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from mmlink.eval.options import OPTION_SCORING_HELP, OPTION_SCORINGS
    from mmlink.eval.tasks import EVAL_TASKS

    tasks = "\n".join(_task_line(n) for n in EVAL_TASKS)
    p = sub.add_parser(
        "eval",
        help="evaluate a model on tasks: captions (BLEU-4/ROUGE-L/CIDEr), closed-ended accuracy, LLM-judged QA",
        description="Answer each task's test items with a model and score them as the papers do: generation tasks "
        "with pycocoevalcap, closed-ended tasks by ranking the candidates by log-likelihood (accuracy, chance "
        "printed beside it), open-ended CaD tasks with an LLM judge (0-5). Data: the world's test sets, "
        "synthesized once into --data-dir, a data set as its authors released it read from a local directory "
        "(--data-root: VIST, NLVR2, GQA, MuirBench, ...; nothing downloads), or your own LLaVA-format files (--data).",
        epilog=EVAL_EPILOG.format(tasks=tasks),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="YAML",
                   help="settings from a file: keys are this command's long options with '_' for '-' (model, task: "
                        "[...], out, data_root: {task: dir}, limit, ...); options given on the command line win")
    p.add_argument("--model", help="preset (tiny, mini) or checkpoint directory (required, here or in --config)")
    p.add_argument("--task", action="append", default=[], metavar="T",
                   help="task name, comma list or group (all, sam, cadvi, sam_released, vislinginstruct, "
                        "multi_image); repeatable; required here or in --config")
    p.add_argument("--out", metavar="DIR", help="run directory, resumable (required, here or in --config)")
    p.add_argument("--task-file", action="append", default=[], metavar="YAML",
                   help="register extra tasks from a YAML file (EvalTask fields; items: 'module:function' hook)")
    p.add_argument("--data", action="append", type=_data_pair, default=[], metavar="TASK=PATH",
                   help="evaluate TASK on this LLaVA-format .json/.jsonl file instead of the world's test set")
    p.add_argument("--data-root", action="append", type=_root_pair, default=[], metavar="[TASK=]DIR",
                   help="read the task's released data set from DIR (its layout: docs/evaluation.md); a bare DIR "
                        "serves every --task, each from DIR/<task> when that exists, else DIR itself (repeatable)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where world test sets are synthesized and images stored inside released data files are "
                        "written (default: OUT/data)")
    p.add_argument("--split", metavar="NAME",
                   help="world: train, val or test (default test); released data: the task's own splits (default: "
                        "the one its paper reports, e.g. nlvr2 test1, gqa testdev)")
    p.add_argument("--limit", type=int, metavar="N", help="items per task (default: each task's own size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the world's test sets and of decoding (default 0)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="items per forward/generate (default 8)")
    p.add_argument("--option-scoring", choices=OPTION_SCORINGS,
                   help=OPTION_SCORING_HELP + " (default: the task's own protocol — generate for the multi-image "
                        "benchmarks, whose official code extracts the option letter — else sum)")
    p.add_argument("--blind", action="store_true", help=BLIND_HELP)
    p.add_argument("--max-new-tokens", type=int, metavar="N", help="override each task's answer length")
    p.add_argument("--tokenize", choices=["simple", "ptb"], default="simple",
                   help="caption metric tokenization: simple (SAM's script, default) or ptb (needs java)")
    p.add_argument("--min-cider-set", type=int, default=10, metavar="N",
                   help="generation tasks with fewer items (a --limit smoke run) report CIDEr as null with the reason "
                        "instead of a meaningless number: its IDF is computed over the evaluated items (default 10; "
                        "0: always compute it)")
    p.add_argument("--dtype", choices=DTYPE_NAMES, default="auto",
                   help=DTYPE_HELP + "; the choice and its reason are recorded in run.json and metrics.json")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--quantize", choices=QUANTIZE_SCHEMES, default="none", help=QUANTIZE_HELP)
    p.add_argument("--plain-generate", action="store_true", help=PLAIN_GENERATE_HELP)
    p.add_argument("--sam-mode", choices=SAM_MODES,
                   help="override the model's SAM variant")
    p.add_argument("--image-size", type=int, default=224, metavar="PX", help="world image size (default 224)")
    p.add_argument("--label", help="display name in reports (default: the model's name)")
    p.add_argument("--aio", action="store_true",
                   help="optimize every item's instruction first (VisLingInstruct's AIO, src/mmlink/aio.py): each "
                        "prediction row records the candidates, their IAS and the optimized instruction, and the "
                        "report AIO's cost (x time per item)")
    p.add_argument("--aio-rewrites", type=int, default=1, metavar="K", help="with --aio: rewrites per instruction")
    p.add_argument("--aio-backend", metavar="SPEC", help="with --aio: the rewriter (default: the model's own LLM)")
    p.add_argument("--judge-backend", metavar="SPEC",
                   help="the judge as a text-LLM spec: template (word overlap with the reference, no model), local, "
                        "local:PATH, openai:MODEL@URL; instead of the three flags below")
    p.add_argument("--judge-url", metavar="URL", help="OpenAI-compatible endpoint of the judge (e.g. .../v1)")
    p.add_argument("--judge-model", metavar="NAME", help="model name at --judge-url")
    p.add_argument("--judge-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the judge's API key (default OPENAI_API_KEY)")
    p.add_argument("--judge-local-model", metavar="DIR",
                   help="a local transformers causal LM as judge (default without --judge-url: mini's SmolLM2, weak)")
    p.add_argument("--judge-cache", metavar="DIR", help="judge response cache (default $MMLINK_CACHE/judge)")
    p.add_argument("--judge-retries", type=int, default=2, metavar="N",
                   help="re-asks after an unparseable rating before it counts as a failure (default 2)")
    p.add_argument("--tolerate-judge-failures", action="store_true",
                   help="report the mean rating over the items the judge could rate; without it, any item the judge "
                        "fails on (unreachable, no rating) stops the run with the reason")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_eval, parser=p)


def _merge_config_file(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill the options not given on the command line from ``--config`` (a YAML mapping of option names)."""
    import yaml

    if not args.config:
        return
    path = Path(args.config)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise FileNotFoundError(f"--config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"--config {path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names, got {type(data).__name__}")
    valid = {a.dest for a in parser._actions if a.dest not in ("help", "config", "func")}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ValueError(f"--config {path}: unknown option(s) {unknown}; valid: {', '.join(sorted(valid))}")
    for key, value in data.items():
        if key in ("data", "data_root") and isinstance(value, dict):  # {task: path} as the TASK=PATH flags give
            value = [(str(k), str(v)) for k, v in value.items()]
        if key == "task" and isinstance(value, str):
            value = [value]
        if getattr(args, key) == parser.get_default(key):
            setattr(args, key, value)


def _run_eval(args: argparse.Namespace) -> int:
    from mmlink.eval.harness import EvalConfig, evaluate
    from mmlink.eval.tasks import load_task_file

    _merge_config_file(args, args.parser)
    missing = [f"--{k}" for k in ("model", "task", "out") if not getattr(args, k)]
    if missing:
        raise ValueError(f"{', '.join(missing)} required (on the command line or in --config)")

    for path in args.task_file:
        load_task_file(path)
    data, roots = dict(args.data), dict(args.data_root)
    if len(data) != len(args.data) or len(roots) != len(args.data_root):
        raise ValueError("--data or --data-root names a task twice")
    config = EvalConfig(
        out=args.out, data=data, data_root=roots, data_dir=args.data_dir, split=args.split, limit=args.limit,
        seed=args.seed, batch_size=args.batch_size, option_scoring=args.option_scoring, blind=args.blind,
        max_new_tokens=args.max_new_tokens, tokenize=args.tokenize, min_cider_set=args.min_cider_set,
        dtype=args.dtype, device=args.device, quantize=args.quantize,
        fast_greedy=not args.plain_generate,
        image_size=args.image_size, sam_mode=args.sam_mode,
        label=args.label, progress=not args.no_progress, aio=args.aio, aio_rewrites=args.aio_rewrites,
        aio_backend=args.aio_backend, judge_backend=args.judge_backend,
        judge_url=args.judge_url, judge_model=args.judge_model,
        judge_key_env=args.judge_key_env, judge_local_model=args.judge_local_model, judge_cache=args.judge_cache,
        judge_retries=args.judge_retries, tolerate_judge_failures=args.tolerate_judge_failures,
    )
    metrics = evaluate(args.model, args.task, config)
    print(Path(args.out, "report.md").read_text())
    print(f"wrote {args.out}/predictions.jsonl, metrics.json, report.md ({len(metrics['tasks'])} task(s))")
    return 0



def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="merge several eval runs (metrics.json) into one comparison table (markdown + CSV) and a bar chart",
        description="Read the metrics.json of each run directory given and write comparison.md, comparison.csv and "
        "comparison.png into --out; the markdown table is printed too (best value per column in bold).",
    )
    p.add_argument("runs", nargs="+", metavar="DIR", help="eval run directories (or their metrics.json files)")
    p.add_argument("--out", default=".", metavar="DIR", help="where to write the comparison (default: .)")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from mmlink.eval.report import compare, load_metrics, write_comparison

    runs = [load_metrics(r) for r in args.runs]
    paths = write_comparison(runs, args.out)
    print(compare(runs)[0])
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


__all__ = ["add_parsers"]
