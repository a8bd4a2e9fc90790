"""Readers for evaluation data sets as their authors release them, read from local directories (nothing downloads).

Each module holds the readers of one paper's evaluation (or of the multi-image benchmarks) and a ``TASKS`` list:
`mmlink.eval.tasks.EvalTask` fields, registered by the task registry. ``mmlink eval --task T --data-root DIR``
reads DIR with task T's reader; `docs/evaluation.md` gives every layout. The modules import only `base` (and the
standard library at import time), so the registry can import them without a cycle.

* `sam`             — VIST, Spot-the-Diff, CLEVR-Change, Birds-to-Words, Image Editing Request, group captions;
* `cadvi`           — BISON, SVO-Probes, NLVR2, EQBEN, COLA, CaD-QA;
* `vislinginstruct` — Flickr30K, NoCaps, VSR, GQA, IconQA, VizWiz, TextVQA, ScienceQA, VisDial, Hateful Memes;
* `multi_image`     — MuirBench, BLINK, Mantis-Eval, MMIU.
"""

from mmlink.eval.benchmarks import cadvi, multi_image, sam, vislinginstruct

TASKS: list[dict] = [*sam.TASKS, *cadvi.TASKS, *vislinginstruct.TASKS, *multi_image.TASKS]

__all__ = ["TASKS"]
