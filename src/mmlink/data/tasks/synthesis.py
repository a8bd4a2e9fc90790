"""The MmLINK synthesis task, ``mmlink_synth``: `mmlink.data.mmlink_synth.MmlinkSynthesizer` with the offline
defaults, retried until a sample passes quality control.

Registration is one-way: `mmlink.data.tasks` imports this module at its end, and this module imports the pipeline
package; `mmlink.data.mmlink_synth` does not import `mmlink.data.tasks` when it is imported.
"""

from __future__ import annotations

import numpy as np

from mmlink.data.mmlink_synth.pipeline import default_synthesizer, make_until_kept
from mmlink.data.tasks import TASKS, WorldSample


@TASKS.register("mmlink_synth")
def mmlink_synth(rng: np.random.Generator, split: str) -> WorldSample:
    """The MmLINK 2-step synthesis with the offline defaults (world characters, alpha masks, procedural
    backgrounds, template text, scene-graph QC), retried until a sample passes QC."""
    return make_until_kept(default_synthesizer(), rng, split)


__all__ = ["mmlink_synth"]
