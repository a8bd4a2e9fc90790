"""CaD-VI Phase 2 as one recipe: annotate → filter → mix → train, given a finished Phase-1 training run.

    mmlink cadvi phase2 --phase1-run runs/cadvi/phase1 --n 400 --out runs/cadvi/phase2
    mmlink cadvi phase2 --config configs/recipes/cadvi_phase2.yaml
    mmlink cadvi annotate|filter|mix|train --config ...   # one stage (the earlier ones done)

CaD-VI §3.3 (the paper, §3.3): the Phase-1 model annotates new, highly similar image pairs — from scratch
and by refining their difference-only annotations — and training repeats on Phase-1 + Phase-2 data, the Phase-1
data listed twice (the released mix). Stages, each resumable (re-run the same command after an interruption):

1. **annotate** (`mmlink.recipes.cadvi_annotate`): new world ``change_caption`` pairs (a split/seed whose samples
   Phase 1 never trained on; checked) or a user pairs file; the Phase-1 model (``<phase1_run>/final``) writes one
   summary per pair and source, into an append-only ``annotations.jsonl``;
2. **filter** (`mmlink.recipes.cadvi_filter`): length, repetition, truncation and format rules, and on the world
   the fact precision of each summary against the pair's scene graphs; ``filter/report.json`` counts every
   decision per source, ``filter/decisions.jsonl`` holds each one;
3. **mix**: ``data/phase2.jsonl`` (the kept summaries of ``train_sources``, as one-turn CaD conversations with a
   Phase-1 instruction), ``data/train.jsonl`` = Phase-1 records × ``phase1_copies`` + Phase 2, ``data/val.jsonl``
   = Phase 1's validation records; image paths rewritten relative to ``data/``;
4. **train**: Phase 1's own `TrainConfig` (read from its ``train_summary.json``) with the mix as ``train_data``,
   ``out/train`` as ``out_dir``, the Phase-1 model as ``model`` (``init: phase1``; ``init: base`` retrains from
   Phase 1's base instead) and the ``train:`` overrides; resumed from its newest checkpoint after an interruption.

Settings: `Phase2Settings` (a YAML/JSON file and flags; unknown keys and wrong types are errors naming the field).
Output layout under ``out``: ``phase2.json`` (the settings), ``pairs/`` (world pairs, `mmlink synth` layout),
``annotate.json`` + ``annotations.jsonl``, ``filter/``, ``data/``, ``train/`` (a `mmlink train` run directory),
``summary.json`` (what each stage did).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from mmlink.settings import (add_command, add_flags, check_fields, from_mapping, given_flags, parse_flags, read_config_file,
                             setting, to_plain)
from mmlink.recipes.cadvi_annotate import SOURCES, Pair
from mmlink.recipes.cadvi_filter import FilterRules

STAGES = ("annotate", "filter", "mix", "train")
SETTINGS_FILE = "phase2.json"
SUMMARY_FILE = "summary.json"
DATA_DIR = "data"
FILTER_DIR = "filter"
TRAIN_DIR = "train"
MIX_STAMP = "mix.sha256"  # in out/train: the mix that run trains on
# TrainConfig fields the recipe sets itself: an override of one of them would silently undo a stage.
RECIPE_TRAIN_FIELDS = ("train_data", "val_data", "out_dir", "model", "image_root", "train_limit")


@dataclass
class Phase2Settings:
    """Every setting of a Phase-2 run (configs/recipes/cadvi_phase2.yaml shows them all)."""

    phase1_run: str = setting(help="the Phase-1 `mmlink train` out_dir (train_summary.json + final/)")
    out: str = setting(help="where every stage writes")
    model: Optional[str] = setting(None, help="the annotator (null: <phase1_run>/final)")
    # 1. pairs: the world's change_caption pairs (difference-only annotation = the change caption), or a user file
    pairs: Optional[str] = setting(None, help="LLaVA .json/.jsonl, two images per record, gpt turn = the "
                                   "difference-only annotation (null: the world's change_caption pairs)")
    n: int = setting(400, min=1, help="world pairs")
    split: Literal["train", "val"] = setting("train", help="world split (never test: the tables are measured there)")
    seed: int = setting(1, min=0, help="world seed")
    image_size: int = setting(224, min=8, help="world image side in pixels")
    # 2. annotate
    sources: tuple[str, ...] = setting(SOURCES, help="annotation sources: scratch and/or refine")
    batch_size: int = setting(8, min=1, help="pairs per generate call")
    # exact world summaries of change pairs: at most 355 SmolLM2 tokens (99 %: 309)
    max_new_tokens: int = setting(384, min=1, help="summary length limit")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting("auto", help="annotator dtype")
    # 3. filter
    filter: FilterRules = setting(factory=FilterRules, help="one filter: setting as KEY=VALUE (repeatable)")
    # 4. mix + train; CaD-Inst^V2 is the refined annotations (paper Table 5, row D → F)
    train_sources: tuple[str, ...] = setting(("refine",), help="sources mixed into training")
    phase1_copies: int = setting(2, min=1, help="times the Phase-1 data is listed in the mix (released: 2)")
    init: Literal["phase1", "base"] = setting("phase1", help="train from the Phase-1 model or from its base")
    train: dict = setting(factory=dict, help="one TrainConfig override as KEY=VALUE, e.g. max_steps=300 "
                          "(repeatable)")
    progress: bool = setting(True, help="progress bars")

    def __post_init__(self) -> None:
        if self.split == "test":  # said before the type check, whose message would not say why
            raise ValueError("split: test is where the CaD-VI tables are measured; Phase 2 must not train on it "
                             "(use train or val)")
        check_fields(self)
        for name in ("sources", "train_sources"):
            values = getattr(self, name)
            bad = [v for v in values if v not in SOURCES]
            if not values or bad or len(set(values)) != len(values):
                raise ValueError(f"{name} must list some of {list(SOURCES)}, each once, got {list(values)!r}")
        missing = sorted(set(self.train_sources) - set(self.sources))
        if missing:
            raise ValueError(f"train_sources {missing} are not annotated: add them to sources {list(self.sources)}")
        recipe_owned = sorted(set(self.train) & set(RECIPE_TRAIN_FIELDS))
        if recipe_owned:
            raise ValueError(f"train: {recipe_owned} are set by the recipe (the mix, out/train, the Phase-1 model); "
                             "use pairs, out, init or model instead")

    @property
    def root(self) -> Path:
        return Path(self.out)

    def annotator(self) -> str:
        return self.model or str(Path(self.phase1_run) / "final")

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


# ------------------------------------------------------------------------------------------------------- Phase 1


def read_phase1(run: str | os.PathLike[str]):
    """The Phase-1 run's `TrainConfig` (from its ``train_summary.json``) and its ``final/`` model directory."""
    from mmlink.train import TrainConfig

    run = Path(run)
    summary_path = run / "train_summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path}: not found; phase1_run must be a finished `mmlink train` out_dir "
                                "(an interrupted one: finish it with --resume first)")
    summary = json.loads(summary_path.read_text())
    try:
        config = from_mapping(TrainConfig, summary.get("config"))
    except ValueError as err:
        raise ValueError(f"{summary_path}: field 'config': {err}") from None
    final = run / "final"
    if not final.is_dir():
        raise FileNotFoundError(f"{final}: the Phase-1 model is missing (phase1_run {run})")
    for name in ("train_data", "val_data"):
        path = getattr(config, name)
        if path is not None and not Path(path).exists():  # a file, or a directory holding the data
            raise FileNotFoundError(f"{summary_path}: config field {name!r} names {path}, which does not exist (paths "
                                    "resolve from the working directory the Phase-1 run was started in)")
    return config, final


def _phase1_records(config, name: str) -> list[dict]:
    """Phase 1's records of ``train_data``/``val_data`` (``train_limit`` applied), images as absolute paths."""
    from mmlink.data.formats import default_image_root, read_dataset, resolve_data_path, resolve_image

    path = resolve_data_path(getattr(config, name))
    records, _ = read_dataset(path, image_root=config.image_root)
    if name == "train_data" and config.train_limit is not None:
        records = records[: config.train_limit]  # what Phase 1 actually trained on
    root = Path(config.image_root) if config.image_root else default_image_root(path)
    return [{**r, "image": [resolve_image(p, root) for p in r["image"]]} for r in records]


def _check_disjoint(pairs: Sequence[Pair], phase1: list[dict]) -> None:
    """Phase 2 annotates *new* pairs: none of them may be a Phase-1 training sample (same id: same task, split,
    seed and index) or show a Phase-1 training image."""
    ids = {r["id"] for r in phase1}
    images = {p for r in phase1 for p in r["image"]}
    same = [p.id for p in pairs if p.id in ids or images.intersection(p.images)]
    if same:
        raise ValueError(f"{len(same)} Phase-2 pair(s) are Phase-1 training samples (first: {same[0]}); choose a "
                         "seed (or split, or pairs file) Phase 1 did not train on")


# ------------------------------------------------------------------------------------------------------- stages


def load_pairs(settings: Phase2Settings, create: bool) -> list[Pair]:
    """The pairs of this run: the user's file, or the world pairs in ``out/pairs`` (synthesized when ``create``)."""
    from mmlink.recipes.cadvi_annotate import PAIRS_DIR, read_pairs, world_pairs

    if settings.pairs is not None:
        path = Path(settings.pairs)
        if not path.is_file():
            raise FileNotFoundError(f"pairs: {path}: no such file")
        return read_pairs(path)
    path = settings.root / PAIRS_DIR / "data.jsonl"
    if create:
        path = world_pairs(settings.root, settings.n, settings.split, settings.seed, settings.image_size,
                           settings.progress)
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: no pairs yet; run the annotate stage first")
    return read_pairs(path)[: settings.n]


def stage_annotate(settings: Phase2Settings) -> dict[str, Any]:
    """1. pairs (checked disjoint from Phase 1's training data) → ``annotations.jsonl``."""
    from mmlink.recipes.cadvi_annotate import annotate

    config, _ = read_phase1(settings.phase1_run)
    pairs = load_pairs(settings, create=True)
    _check_disjoint(pairs, _phase1_records(config, "train_data"))
    result = annotate(pairs, settings.root, settings.annotator(), settings.sources, settings.batch_size,
                      settings.max_new_tokens, settings.dtype, settings.progress)
    return {"pairs": len(pairs), **result}


def stage_filter(settings: Phase2Settings) -> dict[str, Any]:
    """2. every annotation of this run's pairs and sources → decision; ``filter/report.json``, ``decisions.jsonl``;
    returns the report with the kept rows (``kept_rows``: (source, pair, text))."""
    from mmlink.fileio import atomic_write
    from mmlink.recipes.cadvi_annotate import read_annotations
    from mmlink.recipes.cadvi_filter import DECISIONS, REPORT, decide, report, write_decisions

    pairs = {p.id: p for p in load_pairs(settings, create=False)}
    rows = [r for r in read_annotations(settings.root) if r["id"] in pairs and r["source"] in settings.sources]
    rows.sort(key=lambda r: (settings.sources.index(r["source"]), r["id"]))  # file order depends on interruptions
    decided = [(r, decide(r["text"], r["ended"], pairs[r["id"]].scenes, settings.filter)) for r in rows]
    world = all(p.scenes is not None for p in pairs.values())
    rep = report(((r["source"], d) for r, d in decided), settings.filter, world)
    out = settings.root / FILTER_DIR
    out.mkdir(parents=True, exist_ok=True)
    write_decisions(out / DECISIONS, ((r["source"], r["id"], d) for r, d in decided))
    atomic_write(out / REPORT, (json.dumps(rep, indent=2) + "\n").encode())
    kept = [(r["source"], pairs[r["id"]], r["text"]) for r, d in decided if d.keep]
    return {**rep, "kept_rows": kept}


def phase2_record(source: str, pair: Pair, text: str, data_dir: Path) -> dict[str, Any]:
    """A kept annotation as a one-turn CaD conversation. The instruction is one of Phase 1's (chosen by the pair
    id, so it is stable), never the refine prompt: the model learns to answer the plain CaD question."""
    from mmlink.data.tasks.pairs import CAD_INSTRUCTIONS
    from mmlink.data.world.text import conversation, image_prompt

    instruction = CAD_INSTRUCTIONS[zlib.crc32(pair.id.encode()) % len(CAD_INSTRUCTIONS)]
    meta: dict[str, Any] = {"phase": 2, "source": source, "pair": pair.id, "difference_only": pair.change}
    if pair.scenes is not None:
        meta["scenes"] = list(pair.scenes)
    return {"id": f"cadvi2-{source}-{pair.id}", "task": "cad", "image": [_relative(p, data_dir) for p in pair.images],
            "conversations": conversation(image_prompt(2, instruction), text), "meta": meta}


def _relative(path: str, data_dir: Path) -> str:
    return Path(os.path.relpath(path, os.path.abspath(data_dir))).as_posix()


def stage_mix(settings: Phase2Settings, kept: list[tuple[str, Pair, str]]) -> dict[str, Any]:
    """3. ``data/phase2.jsonl`` and ``data/train.jsonl`` = Phase 1 × copies + Phase 2 (+ ``data/val.jsonl``)."""
    from mmlink.data.formats import dumps_record, validate_record
    from mmlink.fileio import atomic_write

    config, _ = read_phase1(settings.phase1_run)
    data_dir = settings.root / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    phase2 = [phase2_record(s, p, t, data_dir) for s, p, t in kept if s in settings.train_sources]
    for index, rec in enumerate(phase2):  # the filter's "unusable" rule keeps these valid; a failure is a bug here
        validate_record(rec, index, source=str(data_dir / "phase2.jsonl"), image_root=data_dir)
    if not phase2:
        raise ValueError(f"the filter kept no annotation of train_sources {list(settings.train_sources)} (see "
                         f"{settings.root / FILTER_DIR / 'report.json'}); Phase 2 would add nothing")

    def rebased(records: list[dict], copy: int) -> list[dict]:
        # Copies after the first get their own ids: a data set's ids are unique (read_dataset refuses repeats).
        return [{**r, "id": r["id"] if copy == 1 else f"{r['id']}-copy{copy}",
                 "image": [_relative(p, data_dir) for p in r["image"]]} for r in records]

    def write(name: str, records: list[dict]) -> Path:
        path = data_dir / name
        atomic_write(path, "".join(dumps_record(r) + "\n" for r in records).encode())
        return path

    phase1 = _phase1_records(config, "train_data")
    train = [r for copy in range(1, settings.phase1_copies + 1) for r in rebased(phase1, copy)] + phase2
    files = {"phase2": str(write("phase2.jsonl", phase2)), "train": str(write("train.jsonl", train)), "val": None}
    if config.val_data is not None:
        files["val"] = str(write("val.jsonl", rebased(_phase1_records(config, "val_data"), 1)))
    by_source = {s: sum(r["meta"]["source"] == s for r in phase2) for s in settings.train_sources}
    return {"phase1_records": len(phase1), "phase1_copies": settings.phase1_copies, "phase2_records": len(phase2),
            "phase2_by_source": by_source, "records": len(train), "files": files}


def phase2_train_config(settings: Phase2Settings):
    """4. Phase 1's TrainConfig with the mix, ``out/train``, the Phase-1 model (``init: phase1``) and overrides."""
    from mmlink.train.config import TrainConfig

    config, final = read_phase1(settings.phase1_run)
    data_dir = settings.root / DATA_DIR
    changes: dict[str, Any] = {
        "train_data": str(data_dir / "train.jsonl"),
        "val_data": str(data_dir / "val.jsonl") if config.val_data is not None else None,
        "image_root": None,  # the mix's image paths are relative to data/
        "train_limit": None,  # Phase 1's limit is applied in the mix already
        "out_dir": str(settings.root / TRAIN_DIR),
        "model": str(final.resolve()) if settings.init == "phase1" else config.model,
        "progress": settings.progress,
    }
    try:
        overrides = parse_flags(TrainConfig, settings.train)
        return from_mapping(TrainConfig, {**config.to_dict(), **changes, **overrides})
    except ValueError as err:
        raise ValueError(f"train: {err}") from None


def stage_train(settings: Phase2Settings) -> dict[str, Any]:
    """4. train (resuming from the newest checkpoint of ``out/train``; a finished run with these settings is kept)."""
    from mmlink.train import train
    from mmlink.train.loop import SUMMARY_FILE as TRAIN_SUMMARY, latest_checkpoint

    config = phase2_train_config(settings)
    mix = Path(config.train_data)
    if not mix.is_file():
        raise FileNotFoundError(f"{mix}: no mix yet; run the mix stage first")
    out = Path(config.out_dir)
    # The mix's path is the same for every run of the recipe, its content is not (more pairs, other filter rules):
    # its hash is kept beside the run, so a changed mix is never resumed into, nor taken for trained.
    digest = hashlib.sha256(mix.read_bytes()).hexdigest()
    stamp = out / MIX_STAMP
    if stamp.is_file() and stamp.read_text().strip() != digest:
        raise ValueError(f"{mix} changed since {out} was trained on it (sha256 in {stamp}); use another out "
                         "directory, or delete that run to train again")
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    done = out / TRAIN_SUMMARY
    if done.is_file():
        old = json.loads(done.read_text())
        changed = sorted(k for k, v in config.to_dict().items() if k != "progress" and old["config"].get(k) != v)
        if changed:
            raise ValueError(f"{done}: a finished Phase-2 run with other settings ({', '.join(changed)}); use another "
                             "out directory, or delete that run to train again")
        return old
    return train(config, resume=latest_checkpoint(out) is not None)


def run(settings: Phase2Settings, stages: Sequence[str] = STAGES) -> dict[str, Any]:
    """Run ``stages`` in order (``mix`` needs the filter's decisions, so it runs the filter first)."""
    from mmlink.fileio import atomic_write
    from mmlink.recipes.cadvi_filter import format_report

    root = settings.root
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(root / SETTINGS_FILE, (json.dumps(settings.to_dict(), indent=2) + "\n").encode())
    summary_path = root / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}

    def record(stage: str, result: dict[str, Any]) -> None:
        summary[stage] = result
        atomic_write(summary_path, (json.dumps(summary, indent=2, default=str) + "\n").encode())

    if "annotate" in stages:
        result = stage_annotate(settings)
        record("annotate", result)
        _say(f"annotate: {result['rows']} summaries of {result['pairs']} pairs ({result['resumed']} "
                       f"already there, {result['generated']} generated) in {result['file']}")
    if "filter" in stages or "mix" in stages:
        result = stage_filter(settings)
        kept = result.pop("kept_rows")
        record("filter", result)
        _say(format_report(result))
        if "mix" in stages:
            result = stage_mix(settings, kept)
            record("mix", result)
            _say(f"mix: {result['records']} records = {result['phase1_records']} Phase-1 × "
                           f"{result['phase1_copies']} + {result['phase2_records']} Phase-2 "
                           f"{result['phase2_by_source']} → {result['files']['train']}")
    if "train" in stages:
        result = stage_train(settings)
        record("train", {k: result.get(k) for k in ("steps", "final_train_loss", "final_val_loss", "final_dir")})
        _say(f"train: {result['steps']} steps, final train loss {result['final_train_loss']:.4f}; model "
                       f"in {result['final_dir']}")
    return summary


def _say(text: str) -> None:
    print(f"cadvi {text}", flush=True)


# ------------------------------------------------------------------------------------------------------- CLI

EPILOG = """stages (each resumable: re-run the same command after an interruption):
  phase2    annotate -> filter -> mix -> train (everything)
  annotate  the Phase-1 model writes a CaD summary per new pair and source (scratch, refine)
  filter    quality filter + filter/report.json (needs annotate)
  mix       filter, then data/train.jsonl = Phase 1 x phase1_copies + kept Phase 2 (needs annotate)
  train     Phase 1's TrainConfig on the mix, from the Phase-1 model (needs mix)
  tables    CaD-VI Tables 1 and 2 on the world: base vs Phase 1 vs Phase 1 + 2 (mmlink cadvi tables --help)

settings: a YAML/JSON file (--config, e.g. configs/recipes/cadvi_phase2.yaml) and flags; flags win.
  Lists take commas (--sources scratch,refine); the filter: and train: sections take KEY=VALUE
  (--filter min_words=10, --train max_steps=300, both repeatable).

example:
  mmlink cadvi phase2 --phase1-run runs/cadvi/phase1 --n 400 --out runs/cadvi/phase2"""

def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _add_stage_parsers(sub: argparse._SubParsersAction) -> None:
    section = {"action": "append", "type": _key_value, "metavar": "KEY=VALUE"}
    for stage in ("phase2", *STAGES):
        p = add_command(sub, stage, help=f"CaD-VI Phase 2: {'all stages' if stage == 'phase2' else 'the ' + stage + ' stage'}",
                        description=__doc__.split("\n\n")[0], epilog=EPILOG)
        p.add_argument("--config", metavar="FILE", help="YAML/JSON file of Phase2Settings")
        add_flags(p, Phase2Settings, custom={"filter": section, "train": section})
        p.set_defaults(func=_run_cli, stages=STAGES if stage == "phase2" else (stage,))
    from mmlink.recipes import cadvi_tables

    cadvi_tables.add_parser(sub)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``mmlink cadvi <stage> ...`` (the `mmlink` command's wiring)."""
    p = add_command(sub, "cadvi", help="CaD-VI: Phase 2 (the Phase-1 model annotates new pairs, filter, mix, train again); "
                         "the paper's tables",
                    description=__doc__.split("\n\n")[0], epilog=EPILOG)
    _add_stage_parsers(p.add_subparsers(dest="stage", metavar="STAGE", required=True))


def settings_from_args(args: argparse.Namespace) -> Phase2Settings:
    """The config file, then the flags; a section's KEY=VALUE pairs update that section of the file (the filter's
    typed by `FilterRules`, the train section's later by `TrainConfig`)."""
    data = read_config_file(args.config) if args.config else {}
    where = str(args.config) if args.config else None
    given = given_flags(args, Phase2Settings)
    for name in ("filter", "train"):
        if name in given:
            section = data.get(name) or {}
            if not isinstance(section, dict):
                raise ValueError(f"{where or 'settings'}: {name}: expected a mapping of settings, got {section!r}")
            pairs = given.pop(name)
            if name == "filter":
                try:
                    pairs = parse_flags(FilterRules, pairs)
                except ValueError as err:
                    raise ValueError(f"filter: {err}") from None
            data[name] = {**section, **pairs}
    return from_mapping(Phase2Settings, {**data, **parse_flags(Phase2Settings, given)}, where)


def _run_cli(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    summary = run(settings, args.stages)
    print(f"cadvi phase2: summary in {settings.root / SUMMARY_FILE}" + (
        f"; model in {summary['train']['final_dir']}" if "train" in args.stages else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``mmlink cadvi <stage> ...``; input errors print one line and return 2."""
    parser = argparse.ArgumentParser(prog="python -m mmlink.recipes.cadvi", description=__doc__.split("\n\n")[0],
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_stage_parsers(parser.add_subparsers(dest="stage", metavar="STAGE", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"cadvi {args.stage}: error: {err}", file=sys.stderr)
        return 2


__all__ = ["Phase2Settings", "STAGES", "add_parser", "main", "phase2_record", "phase2_train_config", "read_phase1",
           "run", "settings_from_args", "stage_annotate", "stage_filter", "stage_mix", "stage_train"]

if __name__ == "__main__":
    sys.exit(main())
