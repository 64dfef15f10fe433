"""Generic machinery of the config tree: build from dicts, ``KEY=VALUE`` overrides, key lists.

A config is a tree of frozen dataclasses. Leaves are ``int``, ``float``,
``bool``, ``str``, ``None``-able versions of those, and tuples (nested tuples
included). Every leaf has a dotted key (``interactions.model.hidden``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A configuration problem the user can fix (unknown key, bad value, bad file)."""


def leaf_keys(cls, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the dataclass type ``cls``, in field order."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            out.extend(leaf_keys(t, prefix + f.name + "."))
        else:
            out.append(prefix + f.name)
    return out


def section_keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key of a section (a nested dataclass) of ``cls``."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            out.append(prefix + f.name)
            out.extend(section_keys(t, prefix + f.name + "."))
    return out


def unknown_key_error(key: str, root_cls, kind: str = "config key") -> ConfigError:
    """A :class:`ConfigError` for ``key`` naming the closest valid keys."""
    valid = leaf_keys(root_cls)
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    if not close:  # a right leaf name in the wrong section: match on the last part
        last = key.split(".")[-1]
        close = [k for k in valid if k.split(".")[-1] == last][:3]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"unknown {kind} {key!r}{hint} (`jaxdyn config` lists every key)")


def build(cls, d: dict[str, Any], prefix: str = "", root=None):
    """The dataclass ``cls`` from a (partial) dict; missing keys keep their defaults.

    Raises:
      ConfigError: unknown keys (naming the closest valid ones) or bad values.
    """
    root = root or cls
    if not isinstance(d, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'!r} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in d:
        if k not in fields:
            raise unknown_key_error(prefix + k, root)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in d.items():
        t = hints[k]
        if dataclasses.is_dataclass(t):
            kwargs[k] = build(t, v, prefix + k + ".", root)
        else:
            kwargs[k] = _from_json(v, t, prefix + k)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad config section {prefix.rstrip('.') or '<root>'!r}: {e}") from e


def _first_member(t, is_none: bool, parse):
    """A value of the union type ``t``: None if ``is_none``, else the first member that parses."""
    if is_none:
        return None
    errors = []
    for a in (a for a in typing.get_args(t) if a is not type(None)):
        try:
            return parse(a)
        except ConfigError as e:
            errors.append(str(e))
    raise ConfigError(errors[0])


def _from_json(v, t, key):
    """A JSON value as the declared type (lists become tuples; ints are checked)."""
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return _first_member(t, v is None, lambda a: _from_json(v, a, key))
    origin = typing.get_origin(t)
    if origin is tuple:
        if not isinstance(v, list | tuple):
            raise ConfigError(f"{key!r} must be a list, got {v!r}")
        inner = typing.get_args(t)
        if len(inner) == 2 and inner[1] is Ellipsis:
            return tuple(_from_json(x, inner[0], key) for x in v)
        if len(inner) != len(v):
            raise ConfigError(f"{key!r} must have {len(inner)} entries, got {v!r}")
        return tuple(_from_json(x, a, key) for x, a in zip(v, inner, strict=True))
    if t is bool:
        if not isinstance(v, bool):
            raise ConfigError(f"{key!r} must be true or false, got {v!r}")
        return v
    if t is int:
        if isinstance(v, bool) or not isinstance(v, int | float) or float(v) != int(v):
            raise ConfigError(f"{key!r} must be an integer, got {v!r}")
        return int(v)
    if t is float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{key!r} must be a number, got {v!r}")
        return float(v)
    if t is str:
        if not isinstance(v, str):
            raise ConfigError(f"{key!r} must be a string, got {v!r}")
        return v
    return v


def coerce(value: str, t, key: str) -> Any:
    """A command-line string as the declared type of ``key``.

    ``none``/``null`` is None for optional keys; tuples take comma-separated
    values (``a,b``) or JSON (``[["ewt", ["xpos"]]]``) for nested ones.
    """
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        return _first_member(t, value.lower() in ("none", "null"), lambda a: coerce(value, a, key))
    if origin is tuple:
        if value.strip().startswith("["):
            try:
                return _from_json(json.loads(value), t, key)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{key!r}: not valid JSON: {e}") from e
        inner = typing.get_args(t)[0]
        return tuple(coerce(v.strip(), inner, key) for v in value.split(",") if v.strip())
    if t is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"bad value for {key!r}: expected true or false, got {value!r}")
    if t is int:
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(
                f"bad value for {key!r}: expected an integer, got {value!r}"
            ) from None
        if not f.is_integer():
            raise ConfigError(f"bad value for {key!r}: expected an integer, got {value!r}")
        return int(f)
    if t is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"bad value for {key!r}: expected a number, got {value!r}") from None
    return value


def set_key(obj, key: str, value: str, root=None):
    """A copy of the config tree ``obj`` with the dotted ``key`` set from a string."""
    root = root or type(obj)
    parts = key.strip().split(".")

    def rec(o, i):
        fields = {f.name for f in dataclasses.fields(o)}
        name = parts[i]
        if name not in fields:
            raise unknown_key_error(key, root)
        t = typing.get_type_hints(type(o))[name]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(t):
                keys = [k for k in leaf_keys(t, key + ".")][:4]
                raise ConfigError(f"{key!r} is a section; set one of its keys, e.g. {keys}")
            try:
                return dataclasses.replace(o, **{name: coerce(value, t, key)})
            except ConfigError:
                raise
            except (TypeError, ValueError) as e:
                raise ConfigError(f"bad value for {key!r}: {e}") from e
        sub = getattr(o, name)
        if not dataclasses.is_dataclass(sub):
            raise unknown_key_error(key, root)
        return dataclasses.replace(o, **{name: rec(sub, i + 1)})

    return rec(obj, 0)
