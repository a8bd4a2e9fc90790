"""mmlink.serve.limits: the engine's and the server's settings, their bounds, and the flags `mmlink serve` makes of
them (built without importing torch)."""

from __future__ import annotations

import pytest

from lightimport import run_light

from mmlink.serve.limits import EngineSettings, ServeLimits


@pytest.mark.parametrize("cls, changes, message", [
    (EngineSettings, {"max_batch": 0}, "max_batch must be >= 1, got 0"),
    (EngineSettings, {"batch_window_ms": -1}, r"batch_window_ms must be >= 0, got -1"),
    (EngineSettings, {"max_prompt_tokens": 1.5}, "max_prompt_tokens: expected an integer"),
    (ServeLimits, {"limit_images": 0}, "limit_images must be >= 1, got 0"),
    (ServeLimits, {"poll_s": 0}, r"poll_s must be > 0, got 0"),
])
def test_out_of_range_settings_name_the_field(cls, changes, message):
    with pytest.raises(ValueError, match=message):
        cls(**changes)


def test_serve_flags_come_from_the_settings_classes_without_torch():
    run_light("from mmlink.cli import build_parser; p = build_parser(); "
              "h = p._subparsers._group_actions[0].choices['serve'].format_help(); "
              "assert '--max-batch N' in h and '--max-tokens-default N' in h and '--allowed-media-domains HOSTS' in h, h; "
              "assert '--poll-s' not in h")
