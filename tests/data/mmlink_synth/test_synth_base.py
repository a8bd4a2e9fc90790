"""mmlink.data.mmlink_synth.base: the component registries, `build`, and the helpers for optional dependencies and
stable seeds."""

from __future__ import annotations

import pytest

import mmlink.data.mmlink_synth as ms
from mmlink.data.mmlink_synth import FILLERS, GROUP_SOURCES, SCORERS, SEGMENTERS, MmlinkSynthesizer, base, build
from mmlink.textllm import LocalLLM, TemplateLLM


def test_registries_and_build():
    assert SEGMENTERS.names() == ["alpha", "grabcut", "segment_anything"]
    assert FILLERS.names() == ["cv2_inpaint", "diffusers", "procedural"]
    assert SCORERS.names() == ["clip", "scene_graph"]
    assert GROUP_SOURCES.names() == ["folders", "world"]
    with pytest.raises(ValueError, match="valid names: alpha, grabcut, segment_anything"):
        MmlinkSynthesizer(segmenter="nope")
    with pytest.raises(ValueError, match="valid: template, local, local:PATH, openai:MODEL@URL"):
        MmlinkSynthesizer(llm="transformers")
    assert isinstance(MmlinkSynthesizer(llm="local").llm, LocalLLM)
    assert isinstance(MmlinkSynthesizer().llm, TemplateLLM)
    synth = MmlinkSynthesizer()
    assert synth.components() == {
        "groups": "WorldGroups", "segmenter": "AlphaSegmenter", "filler": "ProceduralFiller",
        "llm": "TemplateLLM", "scorer": "SceneGraphScorer",
    }  # fmt: skip


def test_build_from_a_name_passes_options_and_a_ready_instance_is_returned_as_is():
    seg = build(SEGMENTERS, "alpha", threshold=7)
    assert isinstance(seg, ms.AlphaSegmenter) and seg.threshold == 7
    ready = ms.AlphaSegmenter()
    assert build(SEGMENTERS, ready) is ready
    with pytest.raises(TypeError, match=r"options \['threshold'\] given for a ready-made segmenter"):
        build(SEGMENTERS, ready, threshold=3)
    with pytest.raises(ValueError, match="unknown similarity scorer 'cosine'; valid names: clip, scene_graph"):
        build(SCORERS, "cosine")


def test_registry_kinds_name_the_stage():
    assert (GROUP_SOURCES.kind, SEGMENTERS.kind, FILLERS.kind, SCORERS.kind) == (
        "group source", "segmenter", "background filler", "similarity scorer")
    with pytest.raises(ValueError, match="background filler 'procedural' is already registered"):
        FILLERS.register("procedural")(object)


def test_stable_seed_is_a_fixed_31_bit_hash():
    import hashlib

    assert base._stable_seed("A sandy beach.") == base._stable_seed(b"A sandy beach.")
    expected = int.from_bytes(hashlib.blake2b(b"ab" + b"\x01", digest_size=8).digest(), "big") % 2**31
    assert base._stable_seed("ab", b"\x01") == expected  # same in every process (no salted hash())
    seeds = {base._stable_seed(f"text {i}") for i in range(200)}
    assert len(seeds) == 200 and all(0 <= s < 2**31 for s in seeds)


def test_optional_dependency_helpers(monkeypatch):
    assert base._has_module("numpy") and not base._has_module("surely_not_a_module_here")
    assert not base._has_module("numpy.not_a_submodule.deeper")  # a missing parent is an answer, not an error
    monkeypatch.setattr(base, "_has_cv2", lambda: False)
    with pytest.raises(ImportError, match="GrabCutSegmenter needs OpenCV: pip install opencv-python-headless"):
        base._require_cv2("GrabCutSegmenter")
