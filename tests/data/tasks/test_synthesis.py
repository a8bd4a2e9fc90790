"""mmlink.data.tasks.synthesis: the ``mmlink_synth`` task is the MmLINK synthesizer with the offline defaults,
retried until quality control keeps a sample."""

from __future__ import annotations

import numpy as np

from mmlink.data.mmlink_synth import MmlinkSynthesizer, make_until_kept
from mmlink.data.mmlink_synth.pipeline import default_synthesizer
from mmlink.data.tasks import TASKS
from mmlink.data.tasks.synthesis import mmlink_synth


def test_the_task_is_registered_and_is_the_default_pipeline_retried():
    assert TASKS.get("mmlink_synth") is mmlink_synth
    got = mmlink_synth(np.random.default_rng(4), "val")
    want = make_until_kept(MmlinkSynthesizer(), np.random.default_rng(4), "val")  # the same random stream
    assert got.conversations == want.conversations and got.meta == want.meta and got.scenes == want.scenes
    assert [im.tobytes() for im in got.images] == [im.tobytes() for im in want.images]
    assert got.meta["task"] == "mmlink_synth" and all(c.identity.split == "val" for s in got.scenes
                                                       for c in s.characters)
    assert default_synthesizer() is default_synthesizer()  # one synthesizer, built once, serves every call
    assert default_synthesizer().components() == MmlinkSynthesizer().components()
