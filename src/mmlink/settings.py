"""Settings: typed dataclasses, and one path from a YAML/JSON file and command-line flags to a checked object.

Every settings class of mmlink (`TrainConfig`, `EvalConfig`, the recipes', the servers', ...) is a dataclass whose
fields carry their help line and bounds (`setting`) and whose ``__post_init__`` calls `check_fields`: each value is
converted to its field's type (list → tuple, int → float, nested sections) and checked against the bounds, and a
wrong one is a ``ValueError`` naming the field — a typo never runs with a silent default. Rules that tie fields
together stay in the class's ``__post_init__``, after `check_fields`.

The same class then makes its command line and reads its files:

* `add_flags` adds one ``--field-name`` flag per field (help, choices and default from the field);
* `given_flags` returns the flags actually given, typed as the YAML scalars they spell (``1e-4``, ``true``,
  ``null``, ``a,b`` for a list);
* `read_config_file` reads a YAML/JSON mapping (YAML 1.2 scalars: ``no`` stays a string), `from_mapping` builds the
  class from it, refusing unknown keys with the list of valid ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

MISSING = dataclasses.MISSING
UNIONS = (Union, types.UnionType)  # Optional[int] and int | None


def setting(default: Any = MISSING, *, factory: Any = MISSING, help: str = "", min: float | None = None,
            max: float | None = None, above: float | None = None, below: float | None = None) -> Any:
    """A settings field: its default (or ``factory``), the help line its flag shows, and numeric bounds that
    `check_fields` enforces (``min``/``max`` inclusive, ``above``/``below`` exclusive; None values are not checked).
    A field without a default is required; a required string must not be empty."""
    meta = {"help": help, "min": min, "max": max, "above": above, "below": below}
    return dataclasses.field(default=default, default_factory=factory, metadata=meta)


# --------------------------------------------------------------------------------------------------- checking


def check_fields(obj: Any, prefix: str = "") -> None:
    """Convert every field of a settings dataclass to its type and check its bounds, in place (frozen classes
    too); a wrong value is a ValueError naming ``<prefix><field>``."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        name = prefix + f.name
        value = check_value(name, getattr(obj, f.name), hints[f.name])
        if f.default is MISSING and f.default_factory is MISSING and value == "":
            raise ValueError(f"{name} is required (a non-empty string)")
        _check_bounds(name, value, f.metadata)
        object.__setattr__(obj, f.name, value)


def _check_bounds(name: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high = meta.get("min"), meta.get("max")
    above, below = meta.get("above"), meta.get("below")
    ok = ((low is None or value >= low) and (high is None or value <= high)
          and (above is None or value > above) and (below is None or value < below))
    if ok:
        return
    lower = f"[{low}" if low is not None else f"({above}" if above is not None else None
    upper = f"{high}]" if high is not None else f"{below})" if below is not None else None
    if lower and upper:
        rule = f"in {lower}, {upper}"
    elif lower:
        rule = f"{'>=' if low is not None else '>'} {lower[1:]}"
    else:
        rule = f"{'<=' if high is not None else '<'} {upper[:-1]}"
    raise ValueError(f"{name} must be {rule}, got {value!r}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # True is an int to Python, not to us


_SCALARS = {
    bool: ("true/false", lambda v: isinstance(v, bool)),
    int: ("an integer", lambda v: _number(v) and isinstance(v, int)),
    float: ("a number", _number),
    str: ("a string", lambda v: isinstance(v, str)),
}


def check_value(name: str, value: Any, hint: Any) -> Any:
    """``value`` converted to the field's type (list → tuple, int → float, mapping → section) or a ValueError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in UNIONS:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_value(name, value, arg)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[-1] if len(errors) == 1 else f"{name}: {value!r} matches none of: " + "; ".join(
            e.split(": ", 1)[-1] for e in errors))
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise ValueError(f"{name}: expected one of {list(args)}, got {value!r}")
    if hint in _SCALARS:
        what, fits = _SCALARS[hint]
        if fits(value):
            return float(value) if hint is float else value
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    if hint is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ValueError(f"{name}: expected a path, got {value!r}")
    if hint in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        fixed = origin is tuple and args[-1] is not Ellipsis  # tuple[float, float]: exactly two
        if fixed and len(args) != len(value):
            raise ValueError(f"{name}: expected a list of {len(args)}, got {list(value)!r}")
        items = args if fixed else args[:1] * len(value)
        out = [check_value(f"{name}[{i}]", v, t) for i, (v, t) in enumerate(zip(value, items))] if args else value
        return tuple(out) if hint is tuple or origin is tuple else list(out)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{name}: expected a mapping, got {value!r}")
        if not args:
            return dict(value)
        return {check_value(f"{name} key", k, args[0]): check_value(f"{name}.{k}", v, args[1])
                for k, v in value.items()}
    if dataclasses.is_dataclass(hint):  # a section such as ``lora:``: its own class checks its fields
        return value if isinstance(value, hint) else from_mapping(hint, value, where=name)
    raise TypeError(f"{name}: unsupported annotation {hint!r}")  # a bug in the settings class, not in the input


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def from_mapping(cls: type, data: Any, where: str | None = None) -> Any:
    """``cls(**data)`` for a mapping of settings: a non-mapping, unknown keys (listed with the valid ones) and
    missing required keys are ValueErrors, prefixed with ``where`` (a file, a section) when given."""
    at = f"{where}: " if where else ""
    if not isinstance(data, dict):
        raise ValueError(f"{at}expected a mapping of settings, got {data!r}")
    names = field_names(cls)
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{at}unknown key(s) {unknown}; valid keys: {', '.join(names)}")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.default is MISSING and f.default_factory is MISSING and data.get(f.name) is None]
    if missing:
        raise ValueError(f"{at}missing required setting(s) {missing}")
    try:
        return cls(**data)
    except ValueError as err:
        if where and not str(err).startswith(where):  # a section's own errors already name it (lora.r ...)
            raise ValueError(f"{at}{err}") from None
        raise


def to_plain(obj: Any) -> dict[str, Any]:
    """A settings object as plain YAML/JSON values (tuples → lists, paths → strings, sections → mappings)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))


# --------------------------------------------------------------------------------------------------- files


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A ``.json`` or YAML file whose top level is a mapping (an empty file: no settings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.load(text, Loader=YamlLoader)
    except Exception as err:  # noqa: BLE001 - any parse error is a bad config file
        raise ValueError(f"{path}: cannot parse: {str(err).splitlines()[0] if str(err) else err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping of settings, got {type(data).__name__}")
    return data


def parse_scalar(value: str) -> Any:
    """A command-line string as the YAML 1.2 scalar it spells (``1e-4`` a float, ``no`` a string, ``[a, b]`` a
    list), with the loader config files use; the string itself when it does not parse."""
    import yaml

    try:
        return yaml.load(value, Loader=YamlLoader)
    except yaml.YAMLError:
        return value


def _make_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader with YAML 1.2 scalars: ``2e-5`` is a float, only true/false are booleans (``no`` stays a
        string, as ``mixed_precision: no`` means)."""

    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+(?:[eE]"
                   r"[-+]?[0-9]+)?|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"),
        list("-+0123456789."),
    )
    return Loader


YamlLoader = _make_loader()


# --------------------------------------------------------------------------------------------------- flags


def parse_flag(value: str, hint: Any) -> Any:
    """A flag's string as its field's value: strings stay as typed (``null`` is None where None is allowed), other
    types read as YAML scalars, and a comma list (``a,b``) is a list where the field takes one."""
    args = typing.get_args(hint) if typing.get_origin(hint) in UNIONS else (hint,)
    kinds = [a for a in args if a is not type(None)]
    if all(k in (str, Path) or typing.get_origin(k) is Literal for k in kinds):
        return None if type(None) in args and value == "null" else value
    parsed = parse_scalar(value)
    lists = [k for k in kinds if k in (tuple, list) or typing.get_origin(k) in (tuple, list)]
    # a list field reads one bare value as a list of one; a field that is a list *or* a name (trainable) only a
    # comma list
    if lists and (isinstance(parsed, str) and "," in parsed or len(lists) == len(kinds) and
                  not isinstance(parsed, list)):
        return [parse_scalar(p.strip()) for p in str(value).split(",") if p.strip()]
    return parsed


def parse_flags(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """`parse_flag` over a mapping of field name → string (values that are not strings are kept); an unknown
    name is a ValueError listing the valid ones."""
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in given.items():
        if key not in hints:
            raise ValueError(f"unknown key {key!r}; valid keys: {', '.join(field_names(cls))}")
        out[key] = parse_flag(value, hints[key]) if isinstance(value, str) else value
    return out


# the usual spelling of a ``progress: bool = True`` field on the command line
NO_PROGRESS = {"flag": "--no-progress", "action": "store_false", "help": "no progress bars"}


def add_command(sub: argparse._SubParsersAction, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose description and epilog keep their line breaks (examples, tables, file layouts)."""
    return sub.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *, skip: typing.Iterable[str] = (),
              custom: dict[str, dict[str, Any]] | None = None) -> None:
    """One flag per field of ``cls`` (except ``skip``): ``--field-name VALUE`` with the field's help line, choices
    (Literal fields) and default; a boolean flag alone means true (``--blind``; ``--blind false`` also works).
    ``custom`` maps a field to argparse keywords that replace the generated ones, e.g. another spelling
    (``{"flag": "--no-progress", "action": "store_false"}``) or a repeated ``KEY=VALUE`` option. Flags not given
    are absent from the parsed namespace (`given_flags` reads those that were)."""
    hints = typing.get_type_hints(cls)
    custom = custom or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = hints[f.name]
        args = typing.get_args(hint) if typing.get_origin(hint) in UNIONS else (hint,)
        kinds = [a for a in args if a is not type(None)]
        required = f.default is MISSING and f.default_factory is MISSING
        default = None if required else f.default if f.default is not MISSING else f.default_factory()
        shown = (",".join(map(str, default)) if isinstance(default, tuple) else
                 str(default).lower() if isinstance(default, bool) else default)
        note = " (required)" if required else "" if default in (None, {}, [], ()) else f" (default: {shown})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "metavar": "VALUE",
                              "help": (f.metadata.get("help", "") + note).lstrip().replace("%", "%%")}
        if kinds == [bool]:
            kw.update(nargs="?", const="true", metavar="BOOL")
        elif len(kinds) == 1 and typing.get_origin(kinds[0]) is Literal:
            kw.update(choices=typing.get_args(kinds[0]), metavar=None)
        elif kinds in ([int], [float]):
            kw["metavar"] = "N" if kinds == [int] else "X"
        kw.update(custom.get(f.name, {}))
        flag = kw.pop("flag", flag_name(f.name))
        if kw.get("action") in ("store_true", "store_false", argparse.BooleanOptionalAction):  # switches take no value
            for key in ("metavar", "nargs", "const", "choices"):
                kw.pop(key, None)
        elif kw.get("action") == "append":
            kw.pop("nargs", None), kw.pop("const", None)
        parser.add_argument(flag, **kw)
        # what the flag is called and what it stands for when absent, for `from_args`' messages and for tools that
        # read the parser (groups share their parser's defaults)
        parser.set_defaults(**{f"_flag_{f.name}": flag, f"_default_{f.name}": default})


def given_flags(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The flags of `add_flags` given on the command line, as given (strings; `parse_flags` types them); a repeated
    ``KEY=VALUE`` option (a list of pairs) becomes a mapping, a key given twice a ValueError."""
    out = {}
    for name in field_names(cls):
        if name not in vars(args):
            continue
        value = getattr(args, name)
        if isinstance(value, list) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            keys = [k for k, _ in value]
            twice = sorted({k for k in keys if keys.count(k) > 1})
            if twice:
                raise ValueError(f"{flag_name(name)} names {', '.join(twice)} twice")
            value = dict(value)
        out[name] = value
    return out


def from_args(cls: type, args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    """``cls`` from ``base`` (a config file's mapping) updated by the flags given on the command line; an error in
    a flag's value names the flag."""
    given = given_flags(args, cls)
    try:
        return from_mapping(cls, {**(base or {}), **parse_flags(cls, given)})
    except ValueError as err:
        name = next((n for n in given if re.match(rf"{n}\b", str(err))), None)
        if name is None:
            raise
        raise ValueError(f"{getattr(args, f'_flag_{name}', flag_name(name))}: {err}") from None


__all__ = ["setting", "from_args", "add_command", "NO_PROGRESS", "check_fields", "check_value", "from_mapping", "field_names", "to_plain", "read_config_file",
           "parse_scalar", "parse_flag", "parse_flags", "add_flags", "given_flags", "flag_name", "YamlLoader"]
