"""docs/evaluation.md lists every task with a reader, its splits and layout, exactly as the registry has them."""

from pathlib import Path

from mmlink.eval.benchmarks.doc import BEGIN, END, section
from mmlink.eval.tasks import EVAL_TASKS

DOC = Path(__file__).resolve().parents[3] / "docs" / "evaluation.md"


def test_the_released_data_section_is_the_registrys():
    text = DOC.read_text()
    current = text[text.index(BEGIN):text.index(END) + len(END)]
    assert current == section(), "docs/evaluation.md is out of date: run python -m mmlink.eval.benchmarks.doc"


def test_every_reader_task_is_in_the_section_and_in_eval_help():
    from mmlink.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["eval"].format_help()
    for name in EVAL_TASKS:
        if EVAL_TASKS.get(name).reader is not None:
            assert f"| `{name}` |" in section() and f"  {name} " in help_text, name
