"""mmlink.settings: one path from a YAML/JSON file and flags to a checked settings dataclass."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal, Optional, Union

import pytest

from mmlink.settings import (add_flags, check_fields, from_args, from_mapping, given_flags, parse_flag, parse_flags,
                             read_config_file, setting, to_plain)


@dataclass
class Section:
    size: int = setting(2, min=1, help="a size")

    def __post_init__(self) -> None:
        check_fields(self, "section.")


@dataclass(frozen=True)
class Demo:
    name: str = setting(help="required text")
    rate: float = setting(0.5, above=0, below=1, help="a share, 95% at most")
    count: Optional[int] = setting(None, min=0)
    mode: Literal["fast", "exact"] = setting("fast")
    tags: tuple[str, ...] = setting(())
    pair: tuple[float, float] = setting((0.9, 0.99))
    policy: Union[Literal["all", "none"], tuple[str, ...]] = setting("all")
    paths: dict[str, str] = setting(factory=dict)
    section: Section = setting(factory=Section)
    note: str | None = setting(None)
    quiet: bool = setting(False)
    progress: bool = setting(True)

    def __post_init__(self) -> None:
        check_fields(self)


def test_values_are_converted_to_their_field_types():
    d = Demo(name="x", rate=1e-1, tags=["a", "b"], pair=[1, 0], policy=["p."], section={"size": 3})
    assert d.tags == ("a", "b") and d.pair == (1.0, 0.0) and isinstance(d.pair[0], float)
    assert d.policy == ("p.",) and d.section == Section(3)
    assert to_plain(d)["pair"] == [1.0, 0.0] and to_plain(d)["section"] == {"size": 3}


@pytest.mark.parametrize("changes, message", [
    ({"name": ""}, "name is required"),
    ({"rate": 0}, r"rate must be in \(0, 1\), got 0"),
    ({"rate": "high"}, "rate: expected a number, got 'high'"),
    ({"count": -1}, "count must be >= 0, got -1"),
    ({"count": True}, "count: expected an integer"),
    ({"mode": "slow"}, r"mode: expected one of \['fast', 'exact'\], got 'slow'"),
    ({"tags": "a"}, "tags: expected a list"),
    ({"tags": [1]}, r"tags\[0\]: expected a string"),
    ({"pair": [0.9]}, "pair: expected a list of 2"),
    ({"policy": "some"}, "policy: 'some' matches none of"),
    ({"paths": {"a": 1}}, "paths.a: expected a string, got 1"),
    ({"section": {"size": 0}}, "section.size must be >= 1, got 0"),
    ({"section": {"sise": 1}}, r"section: unknown key\(s\) \['sise'\]; valid keys: size"),
    ({"note": 3}, "note: expected a string, got 3"),
    ({"quiet": "yes"}, "quiet: expected true/false"),
])
def test_a_wrong_value_names_its_field(changes, message):
    with pytest.raises(ValueError, match=message):
        Demo(**{"name": "x", **changes})


def test_from_mapping_refuses_unknown_and_missing_keys_and_names_where():
    with pytest.raises(ValueError, match=r"^run.yaml: unknown key\(s\) \['nmae'\]; valid keys: name, rate"):
        from_mapping(Demo, {"nmae": "x"}, "run.yaml")
    with pytest.raises(ValueError, match=r"missing required setting\(s\) \['name'\]"):
        from_mapping(Demo, {"rate": 0.2})
    with pytest.raises(ValueError, match="^run.yaml: count must be >= 0"):
        from_mapping(Demo, {"name": "x", "count": -2}, "run.yaml")
    with pytest.raises(ValueError, match="expected a mapping of settings, got"):
        from_mapping(Demo, ["name"])


def test_flag_strings_read_as_their_fields_values():
    assert parse_flag("1e-4", float) == 1e-4 and parse_flag("no", Literal["no", "bf16"]) == "no"
    assert parse_flag("123", str) == "123"  # a string field keeps what was typed
    assert parse_flag("null", Optional[str]) is None and parse_flag("null", str) == "null"
    assert parse_flag("a", tuple[str, ...]) == ["a"]  # a list field: one bare value is a list of one
    assert parse_flag("0.9,0.98", tuple[float, float]) == [0.9, 0.98]
    assert parse_flag("all", Union[Literal["all"], tuple]) == "all"  # a list *or* a name: only commas make a list
    assert parse_flag("a.,b.", Union[Literal["all"], tuple]) == ["a.", "b."]
    assert parse_flag("{size: 4}", Section) == {"size": 4} and parse_flag("false", bool) is False
    with pytest.raises(ValueError, match="unknown key 'nme'; valid keys: name"):
        parse_flags(Demo, {"nme": "x"})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="demo")
    add_flags(p, Demo, skip=("note",), custom={
        "paths": {"action": "append", "type": lambda t: tuple(t.split("=", 1)), "metavar": "K=V"},
        "progress": {"flag": "--no-progress", "action": "store_false", "help": "no progress bar"},
    })
    return p


def test_add_flags_makes_one_flag_per_field_with_help_choices_and_defaults():
    text = _parser().format_help()
    assert "--name VALUE" in text and "required text (required)" in text
    assert "95% at most (default: 0.5)" in text  # a % in a help line is not an argparse format
    assert "--mode {fast,exact}" in text and "--quiet [BOOL]" in text and "--no-progress" in text
    assert "--paths K=V" in text and "--note" not in text


def test_given_flags_are_only_those_on_the_command_line_typed_by_from_args():
    args = _parser().parse_args(["--name", "x", "--quiet", "--tags", "a,b", "--paths", "k=v", "--no-progress",
                                 "--section", "{size: 5}"])
    assert given_flags(args, Demo) == {"name": "x", "tags": "a,b", "paths": {"k": "v"}, "section": "{size: 5}",
                                       "quiet": "true", "progress": False}
    d = from_args(Demo, args, base={"rate": 0.25, "name": "from the file"})
    assert (d.name, d.rate, d.quiet, d.progress, d.tags) == ("x", 0.25, True, False, ("a", "b"))
    assert d.paths == {"k": "v"} and d.section == Section(5)
    twice = _parser().parse_args(["--name", "x", "--paths", "k=v", "--paths", "k=w"])
    with pytest.raises(ValueError, match="--paths names k twice"):
        given_flags(twice, Demo)


def test_config_files_read_yaml_12_scalars(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: no\nrate: 2e-1\nmode: exact\n")
    assert from_mapping(Demo, read_config_file(f)) == Demo(name="no", rate=0.2, mode="exact")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ValueError, match="the top level must be a mapping"):
        read_config_file(tmp_path / "list.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json: cannot parse"):
        read_config_file(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        read_config_file(tmp_path / "none.yaml")


def test_from_args_names_the_flag_of_a_wrong_value():
    p = argparse.ArgumentParser(prog="demo")
    add_flags(p.add_argument_group("g"), Demo, custom={"count": {"flag": "--how-many"}})
    with pytest.raises(ValueError, match="^--how-many: count must be >= 0, got -3$"):
        from_args(Demo, p.parse_args(["--name", "x", "--how-many", "-3"]))
    with pytest.raises(ValueError, match="^--rate: rate must be in"):
        from_args(Demo, p.parse_args(["--name", "x", "--rate", "2"]))
