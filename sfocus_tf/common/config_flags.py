"""Config dataclass fields that are also command-line flags, defined once.

A field declared with ``option(default, help, choices=..., flag=...)`` carries its
help text, its allowed values and its flag name (when the command line spells it
differently, e.g. ``--lr`` for ``learning_rate``). From these, for any config
dataclass (nested dataclass fields are flattened: ``--sigma`` sets
``sfocus.sigma``):

- ``define_flags`` defines the absl flags (a command calls it; importing a library
  module defines none),
- ``config_from_flags`` applies the flags the user set to a base config,
- ``config_to_flags`` writes the flag lines that give back a config (a flagfile).

Fields marked ``derived`` (e.g. ``multi_label``, set from the dataset) have no flag.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, Iterator, Sequence

from absl import flags


def option(default, help: str, *, choices: Sequence | Callable[[], Sequence] | None = None,
           flag: str | None = None, derived: bool = False):
    """A dataclass field with its flag's help text, allowed values (a sequence, or a
    function returning one for registries that grow) and flag name (default: the
    field's name)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "flag": flag, "derived": derived})


def choices_of(field: dataclasses.Field) -> tuple | None:
    """The allowed values of ``field``, or None when any value of its type goes."""
    choices = field.metadata.get("choices")
    return tuple(choices() if callable(choices) else choices) if choices is not None else None


@dataclasses.dataclass(frozen=True)
class FlagField:
    """One flag: the path of its field in the config and how to read and write it."""

    path: tuple[str, ...]  # e.g. ("sfocus", "sigma")
    field: dataclasses.Field
    kind: type  # bool, int, float, str or tuple (a comma-separated list of ints)

    @property
    def name(self) -> str:
        return self.field.metadata.get("flag") or self.field.name

    @property
    def choices(self) -> tuple | None:
        return choices_of(self.field)

    def spelling(self, value) -> str:
        """``value`` as the flag's text (choices that are not strings, e.g. True,
        in lower case)."""
        if isinstance(value, tuple):
            return ",".join(map(str, value))
        if self.choices is not None:
            return value if isinstance(value, str) else str(value).lower()
        return repr(value) if isinstance(value, float) else str(value)

    def parse(self, value):
        """The field's value from the flag's parsed value."""
        if value is None:
            return None
        if self.kind is tuple:
            return tuple(int(item) for item in value)
        if self.choices is not None:
            return {self.spelling(choice): choice for choice in self.choices}[value]
        return value


def flag_fields(cls) -> Iterator[FlagField]:
    """Every field of the config dataclass ``cls`` that is a flag, nested ones included."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.metadata.get("derived"):
            continue
        kind = _value_type(hints[field.name])
        if dataclasses.is_dataclass(kind):
            for nested in flag_fields(kind):
                yield dataclasses.replace(nested, path=(field.name,) + nested.path)
        elif "help" not in field.metadata:
            raise TypeError(f"{cls.__name__}.{field.name} is not declared with option()")
        else:
            yield FlagField((field.name,), field, kind)


def define_flags(cls, flag_values: flags.FlagValues = flags.FLAGS, exclude=()) -> None:
    """Defines one absl flag per field of ``cls`` (see the module docstring), but
    for the flags named in ``exclude``."""
    for item in flag_fields(cls):
        if item.name in exclude:
            continue
        default, help_text = item.field.default, item.field.metadata["help"]
        kwargs = dict(flag_values=flag_values)
        if item.choices is not None:
            flags.DEFINE_enum(item.name, None if default is None else item.spelling(default),
                              [item.spelling(c) for c in item.choices], help_text, **kwargs)
        elif item.kind is bool:
            flags.DEFINE_bool(item.name, default, help_text, **kwargs)
        elif item.kind is int:
            flags.DEFINE_integer(item.name, default, help_text, **kwargs)
        elif item.kind is float:
            flags.DEFINE_float(item.name, default, help_text, **kwargs)
        elif item.kind is tuple:
            flags.DEFINE_list(item.name, None if default is None else list(default),
                              help_text, **kwargs)
        else:
            flags.DEFINE_string(item.name, default, help_text, **kwargs)


def config_from_flags(base, flag_values: flags.FlagValues = flags.FLAGS):
    """``base`` with the value of every flag the user set (on the command line or in
    a flagfile); flags left unset, or not defined, keep ``base``'s values."""
    changes: dict[tuple[str, ...], Any] = {
        item.path: item.parse(flag_values[item.name].value)
        for item in flag_fields(type(base))
        if item.name in flag_values and flag_values[item.name].present}
    return _replace(base, changes)


def flag_values(config) -> Iterator[tuple[FlagField, Any]]:
    """(flag, value) of every flag field of ``config`` that is not None."""
    for item in flag_fields(type(config)):
        value = config
        for name in item.path:
            value = getattr(value, name)
        if value is not None:
            yield item, value


def config_to_flags(config) -> list[str]:
    """The flag lines that give ``config`` back from its class's defaults; fields at
    None are left out (None is every such flag's default)."""
    lines = []
    for item, value in flag_values(config):
        if item.kind is bool and item.choices is None:
            lines.append(f"--{item.name}" if value else f"--no{item.name}")
        else:
            lines.append(f"--{item.name}={item.spelling(value)}")
    return lines


def _replace(config, changes: dict):
    own = {path[0]: value for path, value in changes.items() if len(path) == 1}
    nested: dict[str, dict] = {}
    for path, value in changes.items():
        if len(path) > 1:
            nested.setdefault(path[0], {})[path[1:]] = value
    for name, inner in nested.items():
        own[name] = _replace(getattr(config, name), inner)
    return dataclasses.replace(config, **own) if own else config


def _value_type(hint):
    """``int | None`` -> int, ``tuple[int, ...]`` -> tuple, ``Any`` -> str."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    hint = typing.get_origin(hint) or hint
    return str if hint is Any else hint

