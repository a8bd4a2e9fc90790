"""mmlink.eval.judge: strict rating parse, retries, failures never scored 0, on-disk cache, the backends it is built
from (`mmlink.textllm`), the template backend's lexical rating, the measured discrimination it reports."""

from __future__ import annotations

import json
import socket
import string
from pathlib import Path

import pytest

from mmlink.eval import judge as judge_mod
from mmlink.eval.judge import (
    JUDGE_PROMPT,
    PROMPT_TEMPLATE,
    PROMPT_VERSION,
    RETRY_REMINDER,
    Judge,
    build_prompt,
    cache_key,
    check_path,
    judge_backend,
    lexical_rating,
    parse_rating,
)
from mmlink.textllm import LocalLLM, OpenAILLM, TemplateLLM, TextLLM, TextLLMError


class FakeBackend(TextLLM):
    """Scripted responses in call order; an Exception instance in the script is raised instead."""

    weak = False

    def __init__(self, responses: list, name: str = "fake:judge") -> None:
        self.responses = list(responses)
        self.name = name
        self.prompts: list[str] = []

    @property
    def calls(self) -> int:
        return len(self.prompts)

    def complete(self, prompt: str, system: str | None = None) -> str:
        self.prompts.append(prompt)
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


Q, REF, PRED = "What differs between the images?", "The left cup is red, the right one blue.", "The cups' colours."


def cache_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if not p.name.startswith(".tmp-"))


# --------------------------------------------------------------------------- parse


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Rating: 4", 4),
        ("rating:4", 4),
        ("**Rating:** 3", 3),
        ("Rating: 4/5", 4),
        ("3", 3),
        (" 0.\n", 0),
        ("5/5", 5),
        ("RATING = 2", 2),
        ("The prediction names the colours but not which cup.\nRating: 2", 2),
        ("Rating: 3\nSo, Rating: 3.", 3),  # repeated but consistent
        ("Rating: 6", None),
        ("Rating: -1", None),
        ("-1", None),
        ("6", None),
        ("Rating: 4.5", None),
        ("Rating: 4/10", None),
        ("Rating: 3 ... on reflection, Rating: 4", None),  # ambiguous
        ("Rating: 3\nRating: 9", None),  # one valid, one not
        ("I would give it a 4", None),  # unlabelled free text is not guessed at
        ("Rating: four", None),
        ("", None),
        ("no idea", None),
    ],
)
def test_parse_rating(text: str, expected: int | None) -> None:
    assert parse_rating(text) == expected


def test_prompt_is_versioned_and_complete() -> None:
    prompt = build_prompt(Q, REF, PRED)
    assert PROMPT_VERSION == "cadqa-judge-v1"
    assert Q in prompt and REF in prompt and PRED in prompt
    assert "Rating: N" in prompt and "0 = " in prompt and "5 = " in prompt
    assert RETRY_REMINDER not in prompt
    assert build_prompt(Q, REF, PRED, retry=True) == prompt + "\n\n" + RETRY_REMINDER
    # Braces in user text are data, not format fields.
    assert "{x}" in build_prompt("What is {x}?", REF, PRED)
    fields = {f for _, f, _, _ in string.Formatter().parse(PROMPT_TEMPLATE) if f}
    assert fields == {"question", "reference", "prediction", "reminder"}
    assert JUDGE_PROMPT.name == "cadqa_judge_v1" and "integer from 0 to 5" in PROMPT_TEMPLATE


def test_prompt_text_and_cache_keys_are_those_of_v1() -> None:
    """The prompt moved into a file; cached responses stay valid only if every byte of the prompt is the same."""
    prompt = build_prompt("Q?", "R.", "P.")
    assert prompt.startswith("You are grading a predicted answer to a question about one or more images. You "
                             "cannot see the images: judge the predicted answer only against the reference answer."
                             "\n\nQuestion: Q?\nReference answer: R.\nPredicted answer: P.\n\nRate the predicted")
    assert prompt.endswith('Answer in the form "Rating: N", where N is an integer from 0 to 5.')
    # the keys mmlink 0.1.0 (prompt in judge.py) computed, first attempt and retry
    assert cache_key("local:mini:SmolLM2-135M-Instruct", prompt, 0) == (
        "4da2811f3aec1eee71559f6c3e462fafeb88942fee41d20e2f18d396b3e118c7")
    assert cache_key("x", build_prompt("Q?", "R.", "P.", retry=True), 1) == (
        "568f510bd414e129de024adfc746b605d74e09155dc0d9eb0bb6df45722d5973")


# --------------------------------------------------------------------------- retries and failures


def test_retry_then_success(tmp_path: Path) -> None:
    backend = FakeBackend(["I think it is fine.", "Rating: 4"])
    result = Judge(backend, tmp_path).rate(Q, REF, PRED)
    assert (result.rating, result.attempts, result.failed, result.cached) == (4, 2, False, False)
    assert result.raw == "Rating: 4"
    assert backend.prompts[0] == build_prompt(Q, REF, PRED)
    assert backend.prompts[1] == build_prompt(Q, REF, PRED, retry=True)


def test_retries_exhausted_is_a_failure_not_zero(tmp_path: Path) -> None:
    backend = FakeBackend(["Rating: 5", "good", "fine", "ok"])
    summary = Judge(backend, tmp_path, retries=2).rate_all(
        [{"id": 1, "question": Q, "reference": REF, "prediction": PRED}, ("b", "Q2?", "R2", "P2")], progress=False
    )
    assert backend.calls == 4
    bad = summary.results["b"]
    assert (bad.rating, bad.failed, bad.attempts, bad.raw) == (None, True, 3, "ok")
    assert summary.results["1"].rating == 5
    assert (summary.rated, summary.failures, summary.failed_ids) == (1, 1, ["b"])
    assert summary.mean_rating == 5.0  # the failure is excluded, not averaged in as 0
    assert (summary.backend, summary.weak, summary.n) == ("fake:judge", False, 2)
    assert summary.prompt_version == PROMPT_VERSION
    assert json.loads(json.dumps(summary.to_dict()))["results"]["b"]["rating"] is None


def test_all_failed_mean_is_none(tmp_path: Path) -> None:
    summary = Judge(FakeBackend(["?"]), tmp_path, retries=0).rate_all([("x", Q, REF, PRED)], progress=False)
    assert summary.mean_rating is None and summary.rated == 0 and summary.failed_ids == ["x"]


def test_rate_all_rejects_duplicate_ids_and_bad_items(tmp_path: Path) -> None:
    judge = Judge(FakeBackend([]), tmp_path)
    with pytest.raises(ValueError, match="duplicate ids: 1"):
        judge.rate_all([(1, Q, REF, PRED), ("1", Q, REF, PRED)], progress=False)
    with pytest.raises(ValueError, match="prediction"):
        judge.rate_all([{"id": 1, "question": Q, "reference": REF}], progress=False)
    with pytest.raises(ValueError, match="retries"):
        Judge(FakeBackend([]), tmp_path, retries=-1)


# --------------------------------------------------------------------------- cache


def test_cache_hit_on_a_fresh_judge(tmp_path: Path) -> None:
    first = Judge(FakeBackend(["unsure", "Rating: 3"]), tmp_path).rate(Q, REF, PRED)
    files = cache_files(tmp_path)
    assert len(files) == 2
    entry = json.loads(files[0].read_text())
    assert set(entry) >= {"prompt", "model", "response", "version"}
    assert entry["version"] == PROMPT_VERSION and entry["model"] == "fake:judge"
    assert files[0].parent.name == files[0].stem[:2]

    again = FakeBackend([])
    second = Judge(again, tmp_path).rate(Q, REF, PRED)
    assert again.calls == 0
    assert (second.rating, second.raw, second.attempts, second.cached) == (first.rating, first.raw, 2, True)
    assert first.cached is False


def test_cache_key_depends_on_model_version_prompt_and_attempt(tmp_path: Path) -> None:
    prompt = build_prompt(Q, REF, PRED)
    key = cache_key("fake:judge", prompt, 0)
    assert len(key) == 64 and key == cache_key("fake:judge", prompt, 0, PROMPT_VERSION)
    assert key != cache_key("fake:other", prompt, 0)
    assert key != cache_key("fake:judge", prompt, 0, "cadqa-judge-v2")
    assert key != cache_key("fake:judge", prompt + " ", 0)
    assert key != cache_key("fake:judge", prompt, 1)

    Judge(FakeBackend(["Rating: 3"]), tmp_path).rate(Q, REF, PRED)
    other = FakeBackend(["Rating: 1"], name="fake:other")
    assert Judge(other, tmp_path).rate(Q, REF, PRED).rating == 1  # another model does not reuse the cache
    assert other.calls == 1 and len(cache_files(tmp_path)) == 2


def test_prompt_version_change_misses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Judge(FakeBackend(["Rating: 3"]), tmp_path).rate(Q, REF, PRED)
    monkeypatch.setattr(judge_mod, "PROMPT_VERSION", "cadqa-judge-v2")
    backend = FakeBackend(["Rating: 2"])
    assert Judge(backend, tmp_path).rate(Q, REF, PRED).rating == 2
    assert backend.calls == 1


def test_backend_error_is_a_failed_attempt_and_not_cached(tmp_path: Path) -> None:
    backend = FakeBackend([TextLLMError("http://x/chat/completions returned HTTP 503")] * 3)
    result = Judge(backend, tmp_path).rate(Q, REF, PRED)
    assert (result.rating, result.failed, result.attempts, result.cached) == (None, True, 3, False)
    assert "HTTP 503" in result.raw
    assert cache_files(tmp_path) == []

    recovering = FakeBackend([TextLLMError("timeout"), "Rating: 5"])
    result = Judge(recovering, tmp_path).rate(Q, REF, PRED)
    assert (result.rating, result.attempts) == (5, 2)
    assert len(cache_files(tmp_path)) == 1  # only the real response


def test_damaged_cache_file_is_recomputed(tmp_path: Path) -> None:
    Judge(FakeBackend(["Rating: 3"]), tmp_path).rate(Q, REF, PRED)
    (path,) = cache_files(tmp_path)
    path.write_text("{not json")
    backend = FakeBackend(["Rating: 4"])
    assert Judge(backend, tmp_path).rate(Q, REF, PRED).rating == 4 and backend.calls == 1
    assert json.loads(path.read_text())["response"] == "Rating: 4"


# --------------------------------------------------------------------------- backends


def test_backend_errors_are_failed_attempts(tmp_path: Path) -> None:
    """The judge over a server that fails: every attempt fails, nothing is cached, the item is a failure."""
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAILLM(f"http://127.0.0.1:{port}/v1", "m", timeout=5)
    result = Judge(backend, tmp_path, retries=1).rate(Q, REF, PRED)
    assert result.failed and result.attempts == 2 and "unreachable" in result.raw
    assert cache_files(tmp_path) == []


def test_judge_backend_from_eval_options() -> None:
    backend = judge_backend("http://localhost:8000/v1", "qwen", api_key_env="X_KEY")
    assert isinstance(backend, OpenAILLM) and backend.api_key_env == "X_KEY" and not backend.weak
    assert backend.name == "openai:qwen@http://localhost:8000/v1"  # the name (and so the cache keys) of before
    assert backend.max_tokens == 32
    with pytest.raises(ValueError, match="--judge-model"):
        judge_backend("http://localhost:8000/v1")
    with pytest.raises(ValueError, match="--judge-url"):
        judge_backend(model="qwen")
    local = judge_backend()
    assert isinstance(local, LocalLLM) and local.weak and not local.loaded
    assert local.name == "local:mini:SmolLM2-135M-Instruct" and local.max_new_tokens == 32
    custom = judge_backend(local_model="/models/judge/")
    assert isinstance(custom, LocalLLM) and not custom.weak and custom.name == "local:/models/judge"
    assert Judge("template", "/nonexistent").backend.name == "template"
    assert isinstance(judge_backend(spec="template"), TemplateLLM)  # --judge-backend template
    with pytest.raises(ValueError, match="--judge-backend"):
        judge_backend("http://localhost:8000/v1", "qwen", spec="template")
    with pytest.raises(ValueError, match="--judge-backend"):
        judge_backend(local_model="/models/judge/", spec="local")


def test_template_judge_is_lexical_and_not_cached(tmp_path: Path) -> None:
    judge = Judge(TemplateLLM(), tmp_path)
    assert judge.rate(Q, REF, REF).rating == 5
    assert judge.rate(Q, REF, "").rating == 0
    # one colour swapped: most words still match, so word overlap cannot see the error
    assert judge.rate(Q, REF, "The left cup is green, the right one blue.").rating == 4
    assert lexical_rating(Q, "There are two trees.", "A dog.", "") == "Rating: 0"
    assert cache_files(tmp_path) == []  # computed answers are never cached (a code change would leave stale ones)


def test_discrimination_is_read_back_for_reports(tmp_path: Path) -> None:
    judge = Judge(FakeBackend(["Rating: 5"]), tmp_path)
    unmeasured = judge.discrimination()
    assert unmeasured["measured"] is False and unmeasured["flagged"] is True and unmeasured["auc"] is None
    assert "mmlink judge-check --backend SPEC" in unmeasured["note"]
    assert "judge-check --backend local --cache" in Judge("local", tmp_path).discrimination()["note"]
    path = check_path(tmp_path, "fake:judge")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"backend": "fake:judge", "prompt_version": PROMPT_VERSION, "auc": 0.91,
                                "auc_worst": 0.84, "flagged": False, "min_auc": 0.8, "n_items": 60}))
    summary = judge.rate_all([("a", Q, REF, PRED)], progress=False)
    assert summary.discrimination["measured"] is True and summary.discrimination["auc"] == 0.91
    assert summary.discrimination["flagged"] is False
    assert check_path(tmp_path, "fake:other") != path  # another judge has its own record
    path.write_text(json.dumps({"backend": "fake:judge", "prompt_version": "cadqa-judge-v0", "auc": 0.91}))
    assert judge.discrimination()["measured"] is False  # a check of another prompt version does not count
