"""`mmlink eval` end to end on `tiny`: every registered task, resumability, user data, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmlink.eval.harness import EvalConfig, PredictionStore, evaluate, generate_answers, task_items
from mmlink.eval.judge import Judge
from mmlink.eval.tasks import EVAL_TASKS, EvalTask, load_task_file, pair_match_items, task_from_dict
from mmlink.models import load
from mmlink.textllm import TextLLM


class ScriptedBackend(TextLLM):
    """A judge backend that rates every prediction 3."""

    name = "fake-judge"
    weak = False

    def complete(self, prompt: str, system: str | None = None) -> str:
        return "Rating: 3"


@pytest.fixture(scope="module")
def tiny():
    model, processor = load("tiny")
    return model.eval(), processor


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tmp_path_factory.mktemp("world")


def _config(tmp_path, world, **kw):
    # float32 unless a test asks otherwise: the same numbers on every machine (auto is bf16 only on some CPUs), and
    # evaluate casts the shared `tiny` fixture in place
    kw = {"dtype": "float32", "max_new_tokens": 6, **kw}
    return EvalConfig(out=str(tmp_path / "run"), data_dir=str(world), limit=10, image_size=32, batch_size=4,
                      progress=False, **kw)


def test_every_world_task_runs_end_to_end_on_tiny(tiny, tmp_path, world):
    judge = Judge(ScriptedBackend(), tmp_path / "judge-cache")
    names = [n for n in EVAL_TASKS.names() if EVAL_TASKS.get(n).world_task]  # the released sets: tests/eval/benchmarks
    assert {"group_caption", "storytelling", "change_caption", "bison", "svo", "nlvr2", "eqben", "cola",
            "vqa_options", "cad", "cad_qa"} <= set(names)
    metrics = evaluate("tiny", names, _config(tmp_path, world), loaded=tiny, judge=judge)
    out = tmp_path / "run"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["format"] == "mmlink-eval-v1" and metrics["model"] == "tiny" and metrics["seed"] == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for name in names:
        task, entry = EVAL_TASKS.get(name), metrics["tasks"][name]
        assert entry["kind"] == task.kind and entry["n"] == 10, name
        mine = [r for r in rows if r["task"] == name]
        if task.kind == "generate":  # world data carries scene graphs: facts are scored too
            assert set(entry["metrics"]) == {"ROUGE-L", "CIDEr", "BLEU-4", "fact precision", "fact recall"}
            assert all(v is None or 0 <= v <= 100 for v in entry["metrics"].values())
            assert len(mine) == 10 and all(isinstance(r["text"], str) and r["refs"] for r in mine)
        elif task.kind in ("rank", "pair_match"):
            per_sample = {}
            for r in mine:
                assert r["correct"] == (r["choice"] == r["answer"]) and len(r["logprob"]) == len(r["tokens"])
                per_sample.setdefault(r["sample"], []).append(r["correct"])
            assert len(mine) == (20 if task.kind == "pair_match" else 10)
            want = 100 * sum(all(v) for v in per_sample.values()) / len(per_sample)
            assert entry["metrics"]["accuracy"] == pytest.approx(want)
            assert entry["chance"] == task.chance and entry["scoring"] == "sum"
        else:  # the judge's rating, and world facts checked exactly beside it
            assert set(entry["metrics"]) == {"rating", "fact precision", "fact recall"}
            assert entry["metrics"]["rating"] == 3.0
            assert entry["judge"]["rated"] == 10 and entry["judge"]["failures"] == 0
    core = {"generate": {"ROUGE-L", "CIDEr", "BLEU-4"}, "rank": {"accuracy"}, "pair_match": {"accuracy"},
            "judge": {"rating"}}
    for name in names:  # a 95 % bootstrap interval around every core metric
        entry = metrics["tasks"][name]
        assert core[entry["kind"]] <= set(entry["ci"]), name
        for m, (lo, hi) in entry["ci"].items():
            assert lo <= entry["metrics"][m] <= hi, (name, m)
    assert metrics["tasks"]["cad"]["ci"]["rating"] == [3.0, 3.0]  # every rating is 3: no spread to resample
    report = (out / "report.md").read_text()
    assert "| bison |" in report or "| bison " in report
    assert "(chance 25)" in report and "(chance 50)" in report and "Group captioning" in report
    assert "summed log-likelihood" in report


def test_pair_match_needs_both_images_right_so_chance_is_a_quarter():
    record = {"id": "s", "image": ["a.png", "b.png"], "conversations": [],
              "meta": {"texts": {"A": "a red ball", "B": "a blue ball"}, "answer": "1-B, 2-A"}}
    items = pair_match_items(record)
    assert [(it.id, it.answer, it.candidates) for it in items] == [("s#1", "B", ["A", "B"]), ("s#2", "A", ["A", "B"])]
    assert "Which text goes with Image 1?" in items[0].turns[0]["value"]
    assert "Which text goes with Image 2?" in items[1].turns[0]["value"]
    with pytest.raises(ValueError, match="meta.texts"):
        pair_match_items({**record, "meta": {"texts": {"A": "x", "B": "y"}, "answer": "1-A, 2-A"}})


def test_a_rerun_skips_finished_items_and_a_torn_line_is_dropped(tiny, tmp_path, world):
    config = _config(tmp_path, world)
    evaluate("tiny", ["change_caption"], config, loaded=tiny)
    pred = tmp_path / "run" / "predictions.jsonl"
    lines = pred.read_text().splitlines()
    assert len(lines) == 10
    # A crash mid-write: the last row is gone and half of another line is left behind.
    pred.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:15])
    calls = []
    import mmlink.eval.harness as harness

    original = harness.generate_answers

    def counting(model, processor, items, max_new_tokens, fast_greedy=True, images=None):
        calls.append(len(items))
        return original(model, processor, items, max_new_tokens, fast_greedy, images)

    harness.generate_answers = counting
    try:
        again = evaluate("tiny", ["change_caption"], config, loaded=tiny)
    finally:
        harness.generate_answers = original
    assert calls == [1]  # only the lost item is answered again
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    assert len(rows) == 10 and len({r["id"] for r in rows}) == 10
    assert again["tasks"]["change_caption"]["n"] == 10


def test_another_model_in_the_same_directory_is_refused(tiny, tmp_path, world):
    evaluate("tiny", ["bison"], _config(tmp_path, world), loaded=tiny)
    with pytest.raises(ValueError, match="another run"):
        evaluate("tiny", ["bison"], _config(tmp_path, world, option_scoring="mean"), loaded=tiny)


def test_run_json_and_metrics_record_the_dtype_choice(tmp_path, world, monkeypatch):
    from mmlink import runtime

    avx2 = runtime.Capabilities(device="cpu", cpu_capability="AVX2", avx512_bf16=False, amx=False)
    amx = runtime.Capabilities(device="cpu", cpu_capability="AVX512", avx512_bf16=True, amx=True)
    detected = [avx2]
    monkeypatch.setattr(runtime.Capabilities, "detect", classmethod(lambda cls, device="cpu": detected[0]))
    assert EvalConfig(out=str(tmp_path)).dtype == "auto"  # the default
    config = _config(tmp_path, world, dtype="auto")
    metrics = evaluate("tiny", ["bison"], config, loaded=load("tiny"))
    out = tmp_path / "run"
    run = json.loads((out / "run.json").read_text())
    assert run["dtype"] == "float32"  # the resolved name: what the predictions were computed in
    assert metrics["config"]["dtype"] == "auto"
    assert metrics["dtype"] == runtime.choose_dtype("auto", capabilities=avx2).to_dict()
    assert metrics["dtype"]["reason"] == "auto: CPU (AVX2) has no native bf16 (no AVX512-BF16/AMX) -> float32"
    assert json.loads((out / "metrics.json").read_text())["dtype"] == metrics["dtype"]
    assert "- Dtype: float32 (auto: CPU (AVX2)" in (out / "report.md").read_text()
    # a re-run on the same machine matches run.json, and so does an explicit float32 there
    evaluate("tiny", ["bison"], config, loaded=load("tiny"))
    evaluate("tiny", ["bison"], _config(tmp_path, world), loaded=load("tiny"))
    # on a machine where auto means bfloat16 the predictions would differ: refused
    detected[0] = amx
    with pytest.raises(ValueError, match="another run.*dtype"):
        evaluate("tiny", ["bison"], config, loaded=load("tiny"))


def test_an_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"dtype: expected one of \['auto', 'float32', 'bfloat16', 'float16'\], got 'bf16'"):
        EvalConfig(out=str(tmp_path), dtype="bf16")


def test_batched_generation_equals_one_at_a_time(tiny, tmp_path, world):
    model, processor = tiny
    config = _config(tmp_path, world)
    from mmlink.eval.harness import task_data

    items = task_items(EVAL_TASKS.get("group_caption"), task_data(EVAL_TASKS.get("group_caption"), config), 4)
    assert len({len(it.images) for it in items}) > 1  # different image counts -> different padding
    together = generate_answers(model, processor, items, 8)
    alone = [generate_answers(model, processor, [it], 8)[0] for it in items]
    assert together == alone


def test_user_data_and_a_yaml_task_with_a_hook(tiny, tmp_path, world, monkeypatch):
    monkeypatch.setattr(EVAL_TASKS, "items", dict(EVAL_TASKS.items))  # the task the file registers goes after
    from mmlink.data.synth import synthesize

    data = tmp_path / "mine.jsonl"
    synthesize("bison", tmp_path / "bison", 1, "test", 0, image_size=32, progress=False)  # stands alone
    img = sorted((tmp_path / "bison").glob("images/*.png"))[:2]
    assert len(img) == 2
    records = [{"id": f"q{i}", "image": [str(p) for p in img],
                "conversations": [{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nSame or not?"},
                                  {"from": "gpt", "value": "same"}],
                "meta": {"choices": ["same", "different"], "answer": "same"}} for i in range(3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    spec = tmp_path / "task.yaml"
    spec.write_text("name: same_or_not\nkind: rank\nchance: 50\ntitle: Same?\n")
    (task,) = load_task_file(spec)
    assert EVAL_TASKS.get("same_or_not") is task
    metrics = evaluate("tiny", ["same_or_not"], _config(tmp_path, world, data={"same_or_not": str(data)}),
                       loaded=tiny)
    assert metrics["tasks"]["same_or_not"]["n"] == 3
    assert metrics["tasks"]["same_or_not"]["data"] == str(data)

    hooked = task_from_dict({"name": "hooked", "kind": "rank", "items": "mmlink.eval.tasks:rank_items"})
    assert hooked.build_items(records[0])[0].candidates == ["same", "different"]
    with pytest.raises(ValueError, match="unknown field"):
        task_from_dict({"name": "x", "kind": "rank", "colour": 1})
    with pytest.raises(ValueError, match="kind must be one of"):
        EvalTask("x", "regress")
    with pytest.raises(ValueError, match="cannot import"):
        task_from_dict({"name": "x", "kind": "rank", "items": "nope.nothing:fn"})


def test_record_errors_name_the_file_and_field(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"id": "r1", "image": ["a.png"], "conversations": [
        {"from": "human", "value": "<image> which?"}, {"from": "gpt", "value": "x"}],
        "meta": {"choices": ["a", "b"], "answer": "c"}}) + "\n")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"bad.jsonl.*'r1'.*meta.answer"):
        task_items(EVAL_TASKS.get("bison"), data, None)


def test_prediction_store_round_trip(tmp_path):
    store = PredictionStore(tmp_path / "p.jsonl")
    store.append([{"task": "t", "id": "1", "text": "a"}, {"task": "u", "id": "1", "text": "b"}])
    again = PredictionStore(tmp_path / "p.jsonl")
    assert [r["text"] for r in again.rows("t")] == ["a"] and [r["text"] for r in again.rows("u")] == ["b"]


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        EvalConfig(out=str(tmp_path), batch_size=0)
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        EvalConfig(out=str(tmp_path), limit=0)
    with pytest.raises(ValueError, match=r"option_scoring: expected one of \['sum', 'mean', 'generate'\], got 'max'"):
        EvalConfig(out=str(tmp_path), option_scoring="max")
    with pytest.raises(ValueError, match="blind: expected true/false, got 'yes'"):
        EvalConfig(out=str(tmp_path), blind="yes")
    with pytest.raises(ValueError, match="data.bison: expected a string, got 3"):
        EvalConfig(out=str(tmp_path), data={"bison": 3})
    with pytest.raises(ValueError, match="out is required"):
        EvalConfig(out="")


# --------------------------------------------------------------------------------------------- blind control


def _spy_pixels(monkeypatch, model) -> list:
    """Record the pixel_values every vision-tower call receives (generation and candidate ranking alike)."""
    seen = []
    tower = model.vision_model
    original = tower.patch_features

    def spy(pixel_values, *args, **kwargs):
        seen.append(pixel_values.detach().float().clone())
        return original(pixel_values, *args, **kwargs)

    monkeypatch.setattr(tower, "patch_features", spy)
    return seen


def test_blind_pass_feeds_gray_pixels_keeps_its_own_store_and_resumes(tiny, tmp_path, world, monkeypatch):
    model, processor = tiny
    tasks = ["change_caption", "bison"]
    seen = _spy_pixels(monkeypatch, model)
    real = evaluate("tiny", tasks, _config(tmp_path, world), loaded=tiny)
    assert seen and all(pv.abs().max() > 0.5 for pv in seen)  # the real pass shows the real images
    assert "blind" not in real["tasks"]["bison"]
    out = tmp_path / "run"
    real_rows = (out / "predictions.jsonl").read_text()

    seen.clear()
    metrics = evaluate("tiny", tasks, _config(tmp_path, world, blind=True), loaded=tiny)
    # the real predictions are reused (no real image is encoded again) and left untouched
    assert seen and (out / "predictions.jsonl").read_text() == real_rows
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (processor.image_processor.image_mean,
                                                             processor.image_processor.image_std))
    for pv in seen:  # gray at the normalisation mean: every normalised pixel is 0 up to 8-bit rounding
        assert pv.shape[-2:] == (32, 32) and pv.abs().max() <= (0.5 / 255 / std).max() + 1e-6
    blind_rows = [json.loads(line) for line in (out / "blind" / "predictions.jsonl").read_text().splitlines()]
    assert sorted((r["task"], r["id"]) for r in blind_rows) == sorted(
        (r["task"], r["id"]) for r in map(json.loads, real_rows.splitlines()))
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for name, core in (("change_caption", {"ROUGE-L", "CIDEr", "BLEU-4"}), ("bison", {"accuracy"})):
        entry = metrics["tasks"][name]
        assert set(entry["blind"]) == set(entry["metrics"])
        # every metric with a number on both sides (fact precision is null when no answer states a fact)
        numeric = {m for m, v in entry["metrics"].items() if v is not None and entry["blind"][m] is not None}
        assert core <= numeric and set(entry["gap"]) == numeric
        assert core <= set(entry["gap_ci"]) <= numeric
        for m in numeric:
            assert entry["gap"][m] == pytest.approx(entry["metrics"][m] - entry["blind"][m])
            if entry["gap_ci"].get(m) is not None:
                lo, hi = entry["gap_ci"][m]
                assert lo <= entry["gap"][m] <= hi
    assert metrics["config"]["blind"] is True
    report = (out / "report.md").read_text()
    assert "| blind |" in report and "| gap (real − blind) |" in report

    # resumable like the real store: a torn last line is answered again, and only that one
    pred = out / "blind" / "predictions.jsonl"
    lines = pred.read_text().splitlines()
    pred.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10])
    seen.clear()
    again = evaluate("tiny", tasks, _config(tmp_path, world, blind=True), loaded=tiny)
    assert len(seen) == 1  # one batch: the lost item's images, nothing of the real pass
    assert len(pred.read_text().splitlines()) == len(lines)
    assert again["tasks"]["bison"]["blind"] == metrics["tasks"]["bison"]["blind"]


# --------------------------------------------------------------------------------------------- option scoring


def test_sum_and_mean_scoring_rank_by_their_own_score(tiny, tmp_path, world):
    from mmlink.eval.ranking import CandidateScores

    for scoring in ("sum", "mean"):
        config = _config(tmp_path / scoring, world, option_scoring=scoring)
        metrics = evaluate("tiny", ["vqa_options"], config, loaded=tiny)
        entry = metrics["tasks"]["vqa_options"]
        assert entry["scoring"] == scoring and "unmatched" not in entry
        rows = [json.loads(line) for line in (tmp_path / scoring / "run" / "predictions.jsonl").open()]
        items = {it.id: it for it in task_items(EVAL_TASKS.get("vqa_options"), Path(entry["data"]), 10)}
        for r in rows:
            s = CandidateScores(r["logprob"], r["tokens"])
            assert r["choice"] == items[r["id"]].candidates[s.best(scoring)]
        assert json.loads((tmp_path / scoring / "run" / "run.json").read_text())["option_scoring"] == scoring
    # four options of different token counts: the two rules must disagree somewhere, or the test shows nothing
    choices = [[json.loads(line)["choice"] for line in (tmp_path / s / "run" / "predictions.jsonl").open()]
               for s in ("sum", "mean")]
    assert choices[0] != choices[1]


def test_generate_scoring_matches_answers_to_options(tiny, tmp_path, world, monkeypatch):
    import mmlink.eval.harness as harness

    from PIL import Image

    img = [tmp_path / "two_things.png"]
    Image.new("RGB", (32, 32), (200, 30, 30)).save(img[0])
    prompt = "<image>\nAre the things the same or different?\nA. same\nB. different\nAnswer with the letter."
    answers = {"q0": ("same", "same", "exact"), "q1": ("B", "different", "letter"),
               "q2": ("I think they are different", "different", "contained"),
               "q3": ("same or different", "same", "ambiguous"), "q4": ("B.", "same", "letter")}
    data = tmp_path / "lettered.jsonl"
    data.write_text("".join(json.dumps({
        "id": i, "image": [str(img[0])], "conversations": [{"from": "human", "value": prompt},
                                                            {"from": "gpt", "value": gold}],
        "meta": {"choices": ["same", "different"], "answer": gold}}) + "\n" for i, (_, gold, _) in answers.items()))
    monkeypatch.setitem(EVAL_TASKS.items, "lettered", EvalTask("lettered", "rank", chance=50.0))
    asked = []

    def scripted(model, processor, items, max_new_tokens, fast_greedy=True, images=None):
        asked.append(max_new_tokens)
        return [answers[it.id][0] for it in items]

    monkeypatch.setattr(harness, "generate_answers", scripted)
    config = _config(tmp_path, world, option_scoring="generate", max_new_tokens=None, data={"lettered": str(data)})
    entry = evaluate("tiny", ["lettered"], config, loaded=tiny)["tasks"]["lettered"]
    assert asked and set(asked) == {16}  # a short answer unless --max-new-tokens says otherwise
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "run" / "predictions.jsonl").open())}
    assert {i: r["match"] for i, r in rows.items()} == {i: rule for i, (_, _, rule) in answers.items()}
    assert rows["q3"]["choice"] is None and rows["q3"]["correct"] is False
    assert rows["q1"]["choice"] == "different" and rows["q4"]["correct"] is False  # B is "different", gold "same"
    assert entry["scoring"] == "generate" and entry["unmatched"] == 1
    assert entry["metrics"]["accuracy"] == pytest.approx(100 * 3 / 5)
    assert "a short greedy answer matched to the options" in (tmp_path / "run" / "report.md").read_text()


def test_generate_scoring_runs_the_model(tiny, tmp_path, world):
    config = _config(tmp_path, world, option_scoring="generate")
    entry = evaluate("tiny", ["eqben"], config, loaded=tiny)["tasks"]["eqben"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").open()]
    assert len(rows) == 20 and all(isinstance(r["text"], str) and "logprob" not in r for r in rows)
    assert entry["unmatched"] == sum(r["choice"] is None for r in rows)
    assert all(r["correct"] == (r["choice"] == r["answer"]) for r in rows)


def test_plain_generate_and_the_static_cache_loop_give_the_same_predictions(tmp_path, world):
    runs = {}
    for fast in (True, False):
        model, processor = load("tiny")
        config = _config(tmp_path / str(fast), world, fast_greedy=fast)
        evaluate("tiny", ["group_caption", "change_caption"], config, loaded=(model.eval(), processor))
        runs[fast] = (tmp_path / str(fast) / "run" / "predictions.jsonl").read_text()
    assert runs[True] == runs[False]


def test_quantized_runs_are_recorded_and_not_mixed_with_dense_ones(tmp_path, world):
    model, processor = load("tiny")
    metrics = evaluate("tiny", ["change_caption"], _config(tmp_path, world, quantize="int8"),
                       loaded=(model.eval(), processor))
    assert metrics["quantization"]["scheme"] == "int8" and metrics["quantization"]["quantized"] > 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["quantize"] == "int8"
    with pytest.raises(ValueError, match="another run"):  # a dense re-run into the same directory is refused
        evaluate("tiny", ["change_caption"], _config(tmp_path, world), loaded=load("tiny"))
    with pytest.raises(ValueError, match=r"quantize: expected one of \[.none., .int8., .int4.\], got .int2."):
        _config(tmp_path, world, quantize="int2")


def test_world_generation_scores_facts_against_the_records_scene_graphs(tiny, tmp_path, world):
    from mmlink.eval.harness import score_task, task_data
    from mmlink.eval.tasks import generate_items

    config = _config(tmp_path, world)
    metrics = evaluate("tiny", ["group_caption"], config, loaded=tiny)
    entry = metrics["tasks"]["group_caption"]
    assert list(entry["metrics"]) == ["ROUGE-L", "CIDEr", "BLEU-4", "fact precision", "fact recall"]
    counts = entry["fact_counts"]
    reference = sum(c["reference"] for c in counts.values())
    assert reference > 0  # every group caption states facts
    assert entry["metrics"]["fact recall"] == pytest.approx(100 * sum(c["recalled"] for c in counts.values())
                                                           / reference)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["tasks"]["group_caption"] == entry
    assert "fact precision" in (tmp_path / "run" / "report.md").read_text()

    # answers that are the references themselves: every fact true, every reference fact recalled
    task = EVAL_TASKS.get("group_caption")
    items = task_items(task, task_data(task, config), config.limit)
    assert all(it.scenes and len(it.scenes) == len(it.images) for it in items)
    store = PredictionStore(tmp_path / "refs.jsonl")
    store.append([{"task": task.name, "id": it.id, "text": it.refs[0], "refs": it.refs} for it in items])
    perfect = score_task(task, items, store, config)
    assert perfect["metrics"]["fact precision"] == perfect["metrics"]["fact recall"] == 100.0
    per_type = {k: v for k, v in perfect["facts"].items() if k.startswith(("precision/", "recall/"))}
    assert per_type and set(per_type.values()) == {100.0}

    # user records without meta.scenes: no fact scores (nothing to check them against)
    record = {"id": "u", "image": ["a.png"], "conversations": [{"from": "human", "value": "<image>\nDescribe."},
                                                              {"from": "gpt", "value": "A red ball."}]}
    (bare,) = generate_items(record)
    assert bare.scenes == []
    store.append([{"task": task.name, "id": "u", "text": "A red ball.", "refs": ["A red ball."]}])
    assert "fact precision" not in score_task(task, [*items, bare], store, config)["metrics"]
    with pytest.raises(ValueError, match="'meta.scenes' holds 2 scene"):
        generate_items({**record, "meta": {"scenes": [{}, {}]}})


def test_judge_tasks_score_world_facts_exactly_beside_the_rating(tiny, tmp_path, world):
    from mmlink.eval.harness import score_task, task_data

    config = _config(tmp_path, world)
    task = EVAL_TASKS.get("cad_qa")
    items = task_items(task, task_data(task, config), config.limit)
    Path(config.out).mkdir(parents=True, exist_ok=True)
    judge = Judge(ScriptedBackend(), tmp_path / "judge-cache")
    store = PredictionStore(tmp_path / "refs.jsonl")
    store.append([{"task": task.name, "id": it.id, "text": it.refs[0], "refs": it.refs} for it in items])
    perfect = score_task(task, items, store, config, judge=judge)
    assert perfect["metrics"]["fact precision"] == perfect["metrics"]["fact recall"] == 100.0
    wrong = PredictionStore(tmp_path / "wrong.jsonl")  # every colour word in the references swapped for another
    swap = {"red": "blue", "blue": "red", "green": "yellow", "yellow": "green", "white": "black", "black": "white"}
    wrong.append([{"task": task.name, "id": it.id, "refs": it.refs,
                   "text": " ".join(swap.get(w, w) for w in it.refs[0].split())} for it in items])
    swapped = score_task(task, items, wrong, config, judge=judge)
    assert swapped["metrics"]["rating"] == perfect["metrics"]["rating"] == 3.0  # the scripted judge cannot tell
    assert swapped["fact_counts"]["color"]["mentioned"] > 0
    assert swapped["fact_counts"]["color"]["correct"] < swapped["fact_counts"]["color"]["mentioned"]
    assert swapped["metrics"]["fact precision"] < 100.0


def test_aio_runs_before_answering_and_records_every_step(tiny, tmp_path, world):
    from mmlink.eval.report import run_markdown

    config = _config(tmp_path, world, aio=True)
    metrics = evaluate("tiny", ["change_caption", "bison"], config, loaded=tiny)
    for name in ("change_caption", "bison"):
        rows = PredictionStore(tmp_path / "run" / "predictions.jsonl").rows(name)
        assert len(rows) == 10
        for r in rows:
            steps = r["aio"]
            assert steps["candidates"][0] == steps["instruction"] and len(steps["ias"]) == len(steps["candidates"])
            assert steps["prompt"].endswith(steps["optimized"]) and "<image>" in steps["prompt"]
            assert r["aio_seconds"] > 0 and r["answer_seconds"] > 0
        cost = metrics["tasks"][name]["aio"]
        assert cost["items"] == 10 and cost["cost_x"] > 1.0
        # greedy rewrites depend on the instruction alone: each distinct one is rewritten once in the run
        assert cost["rewrites_reused"] == 10 - len({r["aio"]["instruction"] for r in rows})
    assert "AIO (instruction optimization" in run_markdown(metrics)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["aio"] == {"rewrites": 1, "backend": None}
    with pytest.raises(ValueError, match="another run"):  # AIO and plain answers never mix in one directory
        evaluate("tiny", ["bison"], _config(tmp_path, world), loaded=tiny)
    with pytest.raises(ValueError, match="need aio"):
        _config(tmp_path, world, aio_rewrites=2)


class DownBackend(TextLLM):
    """A judge that cannot be reached."""

    name = "down-judge"
    weak = False

    def complete(self, prompt: str, system: str | None = None) -> str:
        from mmlink.textllm import TextLLMError

        raise TextLLMError("http://judge/v1 unreachable: connection refused")


def test_a_judge_that_fails_stops_the_run_with_its_reason_unless_tolerated(tiny, tmp_path, world):
    from mmlink.eval.harness import JudgeFailedError

    judge = Judge(DownBackend(), tmp_path / "judge-cache", retries=0)
    with pytest.raises(JudgeFailedError, match=r"gave no rating for 10 of 10 item\(s\).*connection refused"):
        evaluate("tiny", ["cad_qa"], _config(tmp_path, world), loaded=tiny, judge=judge)
    assert len((tmp_path / "run" / "predictions.jsonl").read_text().splitlines()) == 10  # the answers are kept
    metrics = evaluate("tiny", ["cad_qa"], _config(tmp_path, world, tolerate_judge_failures=True), loaded=tiny,
                       judge=judge)
    assert metrics["tasks"]["cad_qa"]["judge"]["failures"] == 10


def test_a_training_runs_final_directory_is_labelled_by_its_run():
    from mmlink.eval.harness import model_label

    assert model_label("runs/mini/stage2_base/final") == "stage2_base"
    assert model_label("runs/x/checkpoints/step-000040") == "x@step-000040"
    assert model_label("runs/x/merged") == "x@merged" and model_label("mini") == "mini"
