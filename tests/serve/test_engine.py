"""The engine's pieces without HTTP: a row's streamed text never shows the start of a stop string or half a
character, and shutdown answers every waiting job."""

import pytest

from mmlink.models import load
from mmlink.serve.engine import Engine, EngineClosed, Event, Job, _Row
from mmlink.serve.limits import EngineSettings
from mmlink.serve.protocol import Conversation, Sampling


class CharTokenizer:
    """Token i is the i-th piece; 0 and 1 are the two halves of 'é' in UTF-8."""

    pieces = [b"\xc3", b"\xa9", b"a", b"b", b"S", b"T", b"P", b" "]

    def decode(self, ids, skip_special_tokens=True):
        return b"".join(self.pieces[i] for i in ids).decode("utf-8", errors="replace")


def _run(tokens, stop=(), max_tokens=50):
    events = []
    row = _Row(Job(Conversation(), Sampling(max_tokens=max_tokens, stop=tuple(stop)), emit=events.append), 0)
    for t in tokens:
        if row.finished:
            break
        row.step(t, CharTokenizer(), eos={99})
    return row, events


def test_streamed_text_holds_back_half_characters_and_stop_prefixes():
    row, events = _run([2, 0, 1, 4, 5, 3, 4, 5, 6, 2], stop=["STP"])
    deltas = [e.text for e in events if e.kind == "delta"]
    assert "".join(deltas) == "aéSTb" and "a\ufffd" not in deltas  # 'é' only once whole; 'ST' only once not 'STP'
    assert events[-1] == Event("done", 0, finish_reason="stop", completion_tokens=9)


def test_eos_and_length_finish_a_row():
    _, events = _run([2, 3, 99, 2])
    assert "".join(e.text for e in events if e.kind == "delta") == "ab" and events[-1].finish_reason == "stop"
    assert events[-1].completion_tokens == 3  # EOS counts as generated
    _, events = _run([2, 3, 2, 3], max_tokens=3)
    assert events[-1].finish_reason == "length" and events[-1].completion_tokens == 3


def test_shutdown_answers_every_waiting_job():
    model, processor = load("tiny")
    engine = Engine(model, processor, EngineSettings(max_queue=4))  # never started: jobs stay queued
    events = []
    for _ in range(3):
        engine.submit(Job(Conversation(), Sampling(max_tokens=2), emit=events.append))
    engine.close()
    assert [e.kind for e in events] == ["error"] * 3 and "shutting down" in events[0].text
    with pytest.raises(EngineClosed):
        engine.submit(Job(Conversation(), Sampling(max_tokens=2), emit=events.append))
