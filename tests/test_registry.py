"""`mmlink.registry.Registry`: a name → object dict filled by a decorator that refuses duplicates."""

from types import SimpleNamespace

import pytest

from mmlink.registry import Registry


def _filled() -> Registry:
    reg: Registry = Registry("widget")
    for name in ("zeta", "alpha", "mid"):  # registered out of order on purpose
        reg.register(name)(name.upper())
    return reg


def test_register_returns_the_object_and_stores_it_under_its_name():
    reg: Registry = Registry("widget")

    @reg.register("plain")
    def plain():
        return 1

    assert plain() == 1  # the decorator hands back the function itself, not a wrapper
    assert reg.get("plain") is plain and reg.items == {"plain": plain}
    assert "plain" in reg and "other" not in reg and 3 not in reg


def test_a_second_registration_under_one_name_is_refused_and_keeps_the_first():
    reg = _filled()
    with pytest.raises(ValueError, match="widget 'alpha' is already registered"):
        reg.register("alpha")("again")
    assert reg.get("alpha") == "ALPHA"


def test_a_miss_names_the_kind_the_name_and_every_valid_name_sorted():
    with pytest.raises(ValueError, match=r"unknown widget 'alhpa'; valid names: alpha, mid, zeta$"):
        _filled().get("alhpa")
    with pytest.raises(ValueError, match=r"unknown gadget 'x'; valid names: \(none\)$"):
        Registry("gadget").get("x")


def test_a_miss_is_a_value_error_not_a_key_error():
    with pytest.raises(ValueError) as err:
        _filled().get("nope")
    assert not isinstance(err.value, KeyError) and err.value.__cause__ is None  # `from None`: no KeyError chained


def test_iteration_and_names_are_sorted_whatever_the_registration_order():
    reg = _filled()
    assert list(reg) == reg.names() == ["alpha", "mid", "zeta"]
    assert list(reg.items) == ["zeta", "alpha", "mid"]  # the dict itself keeps registration order


def test_items_is_the_live_public_dict(monkeypatch):
    """Tests add entries with ``monkeypatch.setitem(REG.items, ...)``: visible to get/in/iteration, gone after."""
    reg = _filled()
    with monkeypatch.context() as m:
        m.setitem(reg.items, "beta", "BETA")
        assert reg.get("beta") == "BETA" and "beta" in reg and reg.names() == ["alpha", "beta", "mid", "zeta"]
    assert "beta" not in reg and reg.names() == ["alpha", "mid", "zeta"]


def test_registries_are_independent():
    a, b = Registry("a"), Registry("b")
    a.register("x")(1)
    b.register("x")(2)  # the same name in another registry is no duplicate
    assert (a.get("x"), b.get("x")) == (1, 2) and a.items is not b.items


def test_a_patched_preset_is_loadable_and_removed_afterwards(monkeypatch):
    """The package's registries are Registry objects: the monkeypatch pattern reaches `mmlink.models.load`."""
    from mmlink.models import load
    from mmlink.models.presets import PRESETS

    model, processor = SimpleNamespace(), object()
    with monkeypatch.context() as m:
        m.setitem(PRESETS.items, "test-only-preset", lambda **kw: (model, processor))
        assert load("test-only-preset") == (model, processor)
        assert model.mmlink_source == "test-only-preset"
    assert "test-only-preset" not in PRESETS
    with pytest.raises(ValueError, match="unknown preset 'test-only-preset'; valid names: .*tiny"):
        PRESETS.get("test-only-preset")
