"""The released-data section of `docs/evaluation.md`, written from the task registry so the two cannot disagree.

``python -m mmlink.eval.benchmarks.doc`` rewrites the section between its markers in docs/evaluation.md;
``tests/eval/benchmarks/test_doc.py`` fails when the file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

BEGIN, END = "<!-- released-tasks:begin (python -m mmlink.eval.benchmarks.doc) -->", "<!-- released-tasks:end -->"
GROUPS = (("SAM", "sam"), ("CaD-VI", "cadvi"), ("VisLingInstruct", "vislinginstruct"),
          ("Multi-image benchmarks", "multi_image"))
_SCORES = {"generate": "BLEU-4 / ROUGE-L / CIDEr", "vqa": "VQA accuracy", "pair_match": "accuracy, both rounds",
           "judge": "LLM rating 0-5"}


def _scored(task) -> str:
    if task.kind == "rank":
        score = {"accuracy": "accuracy", "retrieval": "MRR, R@1/5/10", "auc": "AUC, accuracy"}[task.metric]
        how = "generated + option matched" if task.option_scoring == "generate" else "ranked"
        return f"{score} ({how})"
    return _SCORES[task.kind]


def section() -> str:
    """The markdown between the markers: one table per paper, every task with a reader."""
    from mmlink.eval import benchmarks
    from mmlink.eval.tasks import EVAL_TASKS

    lines = [BEGIN]
    for title, module in GROUPS:
        names = [spec["name"] for spec in getattr(benchmarks, module).TASKS]
        lines += ["", f"**{title}**", "", "| task | scored by | splits (default first) | layout of `--data-root DIR` | "
                  "format source |", "|---|---|---|---|---|"]
        for name in names:
            t = EVAL_TASKS.get(name)
            sources = " ; ".join(f"<{s.strip()}>" if s.strip().startswith("http") else s.strip()
                                 for s in t.source.split(";"))
            layout = t.layout.replace("|", "\\|")
            lines.append(f"| `{name}` | {_scored(t)} | {', '.join(t.splits)} | {layout} | {sources} |")
    return "\n".join(lines + ["", END])


def rewrite(path: Path) -> bool:
    """Put the current section into ``path``; True when the file changed."""
    text = path.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + section() + text[end:]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/evaluation.md")
    print(f"{target}: {'updated' if rewrite(target) else 'up to date'}")
