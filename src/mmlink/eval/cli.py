"""``mmlink score``, ``mmlink eval`` and ``mmlink report``: their arguments and what each runs (`add_parsers`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmlink.runtime import PLAIN_GENERATE_HELP
from mmlink.settings import add_command, add_flags, field_names, from_args, read_config_file


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
    p = add_command(
        sub, "score",
        help="caption metrics (BLEU-4, ROUGE-L, CIDEr) of predictions against references, via pycocoevalcap",
        description="Score predicted captions against references with pycocoevalcap's BLEU, ROUGE-L and CIDEr-D "
        "scorers; prints one JSON object with the scores x 100.",
        epilog=SCORE_EPILOG,
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


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from mmlink.eval.harness import EvalConfig
    from mmlink.eval.tasks import EVAL_TASKS

    tasks = "\n".join(_task_line(n) for n in EVAL_TASKS)
    p = add_command(
        sub, "eval",
        help="evaluate a model on tasks: captions (BLEU-4/ROUGE-L/CIDEr), closed-ended accuracy, LLM-judged QA",
        description="Answer each task's test items with a model and score them as the papers do: generation tasks "
        "with pycocoevalcap, closed-ended tasks by ranking the candidates by log-likelihood (accuracy, chance "
        "printed beside it), open-ended CaD tasks with an LLM judge (0-5). Data: the world's test sets, "
        "synthesized once into --data-dir, a data set as its authors released it read from a local directory "
        "(--data-root: VIST, NLVR2, GQA, MuirBench, ...; nothing downloads), or your own LLaVA-format files (--data).",
        epilog=EVAL_EPILOG.format(tasks=tasks),
    )
    p.add_argument("--config", metavar="YAML",
                   help="settings from a file: model, task: [...], task_file and the keys of the options below with "
                        "'_' for '-' (out, data_root: {task: dir}, limit, progress: false, ...); options given on "
                        "the command line win")
    p.add_argument("--model", help="preset (tiny, mini) or checkpoint directory (required, here or in --config)")
    p.add_argument("--task", action="append", default=[], metavar="T",
                   help="task name, comma list or group (all, sam, cadvi, sam_released, vislinginstruct, "
                        "multi_image); repeatable; required here or in --config")
    p.add_argument("--task-file", action="append", default=[], metavar="YAML",
                   help="register extra tasks from a YAML file (EvalTask fields; items: 'module:function' hook)")
    add_flags(p, EvalConfig, custom={
        "data": {"action": "append", "type": _data_pair, "metavar": "TASK=PATH"},
        "data_root": {"action": "append", "type": _root_pair, "metavar": "[TASK=]DIR"},
        "fast_greedy": {"flag": "--plain-generate", "action": "store_false", "help": PLAIN_GENERATE_HELP},
        "progress": {"flag": "--no-progress", "action": "store_false", "help": "no progress bars"},
    })
    p.set_defaults(func=_run_eval)


COMMAND_KEYS = ("model", "task", "task_file")  # --config keys that are not EvalConfig fields


def _run_eval(args: argparse.Namespace) -> int:
    from mmlink.eval.harness import EvalConfig, evaluate
    from mmlink.eval.tasks import load_task_file

    data = read_config_file(args.config) if args.config else {}
    unknown = sorted(set(data) - set(field_names(EvalConfig)) - set(COMMAND_KEYS))
    if unknown:
        valid = sorted([*COMMAND_KEYS, *field_names(EvalConfig)])
        raise ValueError(f"--config {args.config}: unknown key(s) {unknown}; valid keys: {', '.join(valid)}")
    command = {key: data.pop(key) for key in COMMAND_KEYS if key in data}
    model = args.model or command.get("model")
    listed = {key: [value] if isinstance(value, str) else value for key, value in command.items() if key != "model"}
    tasks, task_files = args.task or listed.get("task", []), args.task_file or listed.get("task_file", [])
    out = vars(args).get("out") or data.get("out")
    missing = [flag for flag, value in (("--model", model), ("--task", tasks), ("--out", out)) if not value]
    if missing:
        raise ValueError(f"{', '.join(missing)} required (on the command line or in --config)")
    for path in task_files:
        load_task_file(path)
    config = from_args(EvalConfig, args, data)
    metrics = evaluate(model, tasks, config)
    print(Path(config.out, "report.md").read_text())
    print(f"wrote {config.out}/predictions.jsonl, metrics.json, report.md ({len(metrics['tasks'])} task(s))")
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
