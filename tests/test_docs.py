"""The docs run (issue 15): every command block of README.md and docs/*.md that can run is run, so a doc that lies
fails CI.

**Marking.** The line directly above a fence decides what happens to the block:

    <!-- docs-test -->                        run it
    <!-- docs-test: skip (REASON) -->         never run it; REASON says why (a server, a GPU, real checkpoints, ...)

Every ```bash / ```python block carries one of the two (`test_every_block_is_decided`), so a new block cannot
escape silently. A block to run holds mmlink commands only (``mmlink X`` or ``.venv/bin/mmlink X``, with ``\\``
continuations and ``#`` comments); any other line (curl, accelerate, make, ``IMG=...``) fails the test: move it into
a block marked skip.

**Running.** The blocks of one file run in order in one temporary directory (``examples/`` and ``configs/`` linked
in, nothing written into the repository), so a command may use what an earlier command of the same file wrote.
Commands run in-process through ``mmlink.cli.main`` and must exit 0; the files the doc promises (`PROMISES`) must
exist afterwards. Python blocks run with ``exec`` in the same directory. A failure names the file, the line and the
command as written and as run.

**Scale** (``MMLINK_DOCS_SCALE``):

* ``tiny`` (default; the default suite and CI): each command is rewritten by the rules of `TINY` below before it
  runs, so the whole file takes seconds on 2 CPU cores;
* ``full``: the commands exactly as written, on the `mini` weights — minutes to hours of CPU, so these tests carry
  the ``slow`` marker::

      MMLINK_DOCS_SCALE=full .venv/bin/python -m pytest -m slow tests/test_docs.py

`KNOWN_BUGS` lists commands whose docs are right but whose code fails; they must still fail, with the recorded
error, until the bug is fixed (then the test says to remove the entry).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = ("examples", "configs")  # what the commands read from the repository, linked into the run directory
SCALE = os.environ.get("MMLINK_DOCS_SCALE", "tiny")

# ----------------------------------------------------------------------------------------------------------------
# MMLINK_DOCS_SCALE=tiny: every rewrite rule, in one table.
TINY = {
    # presets: each `mini*` preset loads `tiny`, the LLaVA family ones `tiny-llava` (first matching prefix wins) —
    # in `--model`, in the rows that ablation / vislinginstruct / cadvi tables pick themselves, and in Python blocks
    "presets": {"mini-llava": "tiny-llava", "mini-cadvi": "tiny-llava", "mini": "tiny"},
    # options set to this value wherever the command takes them (added when the doc leaves them out);
    # None: a flag without a value
    "options": {
        "--n": "2", "--limit": "2", "--max-steps": "2",  # 2 items per task or data set, 2 training steps
        "--batch-size": "2",  # so that 2 training records make a batch
        "--image-size": "32", "--max-new-tokens": "4", "--new-tokens": "4",
        "--workers": "1", "--repeats": "1", "--warmup": "0", "--no-memory": None,  # no subprocesses, one timing
        "--min-cider-set": "0",  # CIDEr over 2 items (meaningless, but the command runs as written)
        "--no-progress": None, "--progress": "false",
    },
    # options added only when the doc leaves them out (a dtype the doc names stays): tiny's 32-d matrices run
    # fastest in float32
    "defaults": {"--dtype": "float32", "--mixed-precision": "no"},
    # values replaced where the doc gives them: the text LLM `local` (mini's SmolLM2) becomes the deterministic
    # `template` backend
    "values": {"--backend": {"local": "template"}},
}

# Files a command's doc promises, relative to its output (`--out`, or train's out_dir), checked after each run.
PROMISES = {
    "synth": ["data.jsonl", "data.json", "images", "synth.json"],  # + preview.png with --preview
    "eval": ["predictions.jsonl", "metrics.json", "report.md"],
    "report": ["comparison.md", "comparison.csv", "comparison.png"],
    "train": ["final", "train_summary.json"],
    "judge-check": ["judge_check.json", "judge_check.md"],
    "vislinginstruct": ["table.md", "table.json", "table.png"],
    "cadvi tables": ["tables.md", "tables.json", "tables.png"],
    "export": ["config.json"],
    "ablation": ["comparison.md", "comparison.png", "ablation.md", "ablation.csv", "ablation.png", "examples.png"],
}

# Commands the docs describe rightly that fail because of a code bug: (why, a regex the failure output must match).
KNOWN_BUGS: dict[str, tuple[str, str]] = {}  # command -> (why the docs are right and the code is not, error)

MARK = re.compile(r"^<!--\s*docs-test(?P<rest>.*?)-->\s*$")
SKIP = re.compile(r"^:\s*skip\s*\((?P<reason>.+)\)\s*$")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
RUNNABLE_LANGS = {"bash", "sh", "shell", "python"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None  # the marker line above the fence, if any
    run: bool = False
    reason: str | None = None
    problems: list[str] = field(default_factory=list)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def parse_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if MARK.match(lines[i].strip()) and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                blocks.append(Block(path, i + 1, "", "", lines[i], problems=["a docs-test marker not above a fence"]))
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        marker = lines[i - 1].strip() if i > 0 and MARK.match(lines[i - 1].strip()) else None
        block = Block(path, i + 1, m["lang"], "\n".join(lines[i + 1:end]), marker)
        if marker is not None:
            rest = MARK.match(marker)["rest"].strip()
            skip = SKIP.match(rest)
            if rest == "":
                block.run = True
            elif skip:
                block.reason = skip["reason"].strip()
            else:
                block.problems.append(f"bad marker {marker!r} (<!-- docs-test --> or <!-- docs-test: skip (why) -->)")
        elif m["lang"] in RUNNABLE_LANGS:
            block.problems.append("no decision: mark it <!-- docs-test --> or <!-- docs-test: skip (why) -->")
        blocks.append(block)
        i = end + 1
    return blocks


@dataclass
class Command:
    line: int  # 1-based line in the doc
    text: str  # as written (continuations joined)
    argv: list[str]  # the arguments after `mmlink`


def commands(block: Block) -> list[Command]:
    """The mmlink commands of a bash block; a line that is not one raises ValueError."""
    out, pending, start = [], "", 0
    for k, raw in enumerate(block.text.splitlines()):
        line_no = block.line + 1 + k
        if not pending:
            start = line_no
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1].strip() + " "
            continue
        text, pending = (pending + raw.strip()).strip(), ""
        words = shlex.split(text, comments=True)
        if not words:
            continue
        if Path(words[0]).name != "mmlink":
            raise ValueError(f"{rel(block.path)}:{start}: not an mmlink command: {text!r} (a block to run holds "
                             "mmlink commands only: move this line into a block marked skip)")
        out.append(Command(start, text, words[1:]))
    return out


# ----------------------------------------------------------------------------------------------------------------
# scaling


def _subparser(argv: list[str]):
    """The argparse parser of the (sub)command ``argv`` names, and the words naming it (``["cadvi", "tables"]``)."""
    import argparse

    from mmlink.cli import build_parser

    parser, names = build_parser(), []
    for word in argv:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word not in sub.choices:
            break
        parser, names = sub.choices[word], [*names, word]
    return parser, names


def scale_tiny(argv: list[str]) -> list[str]:
    """``argv`` rewritten by `TINY` (a help request is left alone)."""
    if "-h" in argv or "--help" in argv:
        return list(argv)
    parser, _ = _subparser(argv)
    known = parser._option_string_actions
    argv = list(argv)
    for option, value in [*TINY["options"].items(), *TINY["defaults"].items()]:
        if option not in known:
            continue
        takes_value = known[option].nargs != 0
        at = [k for k, w in enumerate(argv) if w == option or w.startswith(option + "=")]
        if not at:
            argv += [option] + ([value] if takes_value else [])
        elif takes_value and option in TINY["options"]:
            for k in at:
                if argv[k] == option:
                    argv[k + 1] = value
                else:
                    argv[k] = f"{option}={value}"
    for option, mapping in TINY["values"].items():
        for k, w in enumerate(argv[:-1]):
            if w == option and argv[k + 1] in mapping:
                argv[k + 1] = mapping[argv[k + 1]]
    return argv


def tiny_preset(name: str) -> str | None:
    return next((tiny for prefix, tiny in TINY["presets"].items() if name.startswith(prefix)), None)


@pytest.fixture
def scaled(monkeypatch, tmp_path):
    """Apply the scale's environment: under ``tiny`` every `mini*` preset loads its tiny stand-in, the cache is a
    temporary directory and torch runs one thread (tiny matrices run fastest on one)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if SCALE != "tiny":
        yield
        return
    import torch

    from mmlink.models.presets import PRESETS

    for name in list(PRESETS.items):
        if tiny_preset(name):
            monkeypatch.setitem(PRESETS.items, name, PRESETS.get(tiny_preset(name)))
    monkeypatch.setenv("MMLINK_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------------------------
# running


def _reset_accelerate() -> None:
    """Several training runs in one process: each starts from a clean accelerate state."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _option(argv: list[str], name: str, default: str | None = None) -> str | None:
    for k, w in enumerate(argv):
        if w == name and k + 1 < len(argv):
            return argv[k + 1]
        if w.startswith(name + "="):
            return w.split("=", 1)[1]
    return default


def promised(argv: list[str], names: list[str]) -> list[Path]:
    """The files `PROMISES` names for this command, resolved against its output."""
    key = " ".join(names)
    files = PROMISES.get(key, PROMISES.get(names[0], []) if len(names) == 1 else [])
    if not files or "-h" in argv or "--help" in argv:
        return []
    if key == "train":
        import yaml

        config = _option(argv, "--config")
        settings = yaml.safe_load(Path(config).read_text()) if config else {}
        out = _option(argv, "--out-dir", settings.get("out_dir"))
    else:
        parser, _ = _subparser(argv)
        default = parser.get_default("out")
        if default == argparse.SUPPRESS:  # a flag of a settings class (mmlink.settings.add_flags): the field's default
            default = parser.get_default("_default_out")
        out = _option(argv, "--out", default if "--out" in parser._option_string_actions else None)
    if out is None:
        return []
    extra = ["preview.png"] if key == "synth" and "--preview" in argv else []
    return [Path(out) / f for f in [*files, *extra]]


def run_command(doc: Path, cmd: Command) -> None:
    from mmlink.cli import main

    argv = scale_tiny(cmd.argv) if SCALE == "tiny" else list(cmd.argv)
    _, names = _subparser(argv)
    if names and names[0] in ("train", "sweep", "cadvi"):
        _reset_accelerate()
    where = f"{rel(doc)}:{cmd.line}: `{cmd.text}`"
    if SCALE == "tiny":
        where += f"\n  ran as: mmlink {shlex.join(argv)}"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            rc = main(argv)
        except SystemExit as err:  # --help, argparse errors
            rc = err.code if isinstance(err.code, int) else (0 if err.code is None else 2)
        except Exception:  # noqa: BLE001 - report any crash with the command that caused it
            traceback.print_exc()
            rc = "an exception"
    output = buffer.getvalue()
    bug = KNOWN_BUGS.get(" ".join(names)) or KNOWN_BUGS.get(names[0] if names else "")
    if bug is not None:
        why, expected = bug
        if rc == 0:
            pytest.fail(f"{where}\n  now succeeds: the known bug is fixed ({why}); remove it from KNOWN_BUGS")
        if not re.search(expected, output):
            pytest.fail(f"{where}\n  failed ({rc}), but not with the known bug's error {expected!r}:\n{output[-4000:]}")
        return
    if rc != 0:
        pytest.fail(f"{where}\n  exited {rc}:\n{output[-4000:]}")
    missing = [str(p) for p in promised(argv, names) if not p.exists()]
    if missing:
        pytest.fail(f"{where}\n  ran, but the files the doc promises are missing: {', '.join(missing)}")


def run_python(doc: Path, block: Block) -> None:
    code = "\n" * block.line + block.text  # line numbers in a traceback are the doc's
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            exec(compile(code, rel(doc), "exec"), {"__name__": "__docs__"})
        except Exception:  # noqa: BLE001
            pytest.fail(f"{rel(doc)}:{block.line}: the Python block fails:\n{traceback.format_exc()[-4000:]}")


# ----------------------------------------------------------------------------------------------------------------
# tests


def test_every_block_is_decided():
    """Every bash/python block is marked to run or skipped with a reason; blocks to run hold mmlink commands only."""
    problems = []
    for doc in DOCS:
        for block in parse_blocks(doc):
            problems += [f"{rel(doc)}:{block.line}: {p}" for p in block.problems]
            if block.run and block.lang not in RUNNABLE_LANGS:
                problems.append(f"{rel(doc)}:{block.line}: marked to run, but a {block.lang or 'plain'} block")
            if block.run and block.lang != "python":
                try:
                    if not commands(block):
                        problems.append(f"{rel(doc)}:{block.line}: marked to run, but holds no command")
                except ValueError as err:
                    problems.append(str(err))
    assert not problems, "\n".join(problems)


def test_tiny_rules():
    """The rules of `TINY` on two commands: values replaced, missing options added where the command takes them."""
    argv = shlex.split("synth storytelling --out d --n 500 --split test --seed 0 --workers 2 --preview")
    assert shlex.join(scale_tiny(argv)) == ("synth storytelling --out d --n 2 --split test --seed 0 --workers 1 "
                                            "--preview --image-size 32 --no-progress")
    argv = shlex.split("eval --model mini --task bison --out o --dtype bfloat16")
    assert shlex.join(scale_tiny(argv)) == ("eval --model mini --task bison --out o --dtype bfloat16 --limit 2 "
                                            "--batch-size 2 --image-size 32 --max-new-tokens 4 --min-cider-set 0 "
                                            "--no-progress")  # a dtype the doc names stays
    argv = shlex.split("judge-check --backend local --out o")
    assert scale_tiny(argv) == ["judge-check", "--backend", "template", "--out", "o", "--n", "2", "--no-progress"]
    assert tiny_preset("mini-cadvi-phase1") == "tiny-llava" and tiny_preset("mini-base") == "tiny"
    assert tiny_preset("tiny") is None


RUN_DOCS = [doc for doc in DOCS if any(b.run for b in parse_blocks(doc))]


@pytest.mark.parametrize(
    "doc", [pytest.param(d, id=rel(d), marks=[pytest.mark.slow] if SCALE == "full" else []) for d in RUN_DOCS]
)
def test_doc_runs(doc, scaled, tmp_path, monkeypatch):
    """The blocks of ``doc`` marked to run, in order, in one fresh directory."""
    assert SCALE in ("tiny", "full"), f"MMLINK_DOCS_SCALE must be tiny or full, not {SCALE!r}"
    work = tmp_path / "work"
    work.mkdir()
    for name in LINKED:
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(work)
    for block in parse_blocks(doc):
        if not block.run:
            continue
        if block.lang == "python":
            run_python(doc, block)
        else:
            for cmd in commands(block):
                run_command(doc, cmd)
