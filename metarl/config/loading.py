"""Strict YAML loading, typed ``--set section.key=value`` overrides, and one-line errors.

Pydantic checks the data against :class:`~metarl.config.schema.RLConfig` or
:class:`~metarl.config.schema.FewShotConfig`; the first problem becomes a :class:`ConfigError` that names
the key (dotted path), the value and what is allowed, with the closest valid key for an unknown one.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from metarl.config.fields import NOUNS, expected_text, field_info, to_number, type_name
from metarl.config.schema import (
    FEWSHOT_ONLY,
    KEY_ORDER,
    RL_ONLY,
    AnyConfig,
    FewShotConfig,
    RLConfig,
    section_defaults,
    suspicious_settings,
    unused_sections,
)
from metarl.core.errors import ConfigError, closest

_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
}


@functools.cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    """Pydantic's validator of ``cls``, built on first use (a few tens of milliseconds)."""
    return TypeAdapter(cls)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _keys(cls: type) -> list[str]:
    """The valid keys of a section, or of the top level (every section of both kinds of run)."""
    if cls in (RLConfig, FewShotConfig):
        return list(KEY_ORDER)
    return [f.name for f in dataclasses.fields(cls)]


def _walk(cls: type, data: Any, names: list[str]) -> tuple[type, Any, Any]:
    """The section class holding ``names[-1]``, that key's hint and its value in ``data``."""
    hint: Any = cls
    for name in names:
        cls = hint
        hint = _hints(cls)[name]
        data = data.get(name) if isinstance(data, dict) else None
    return cls, hint, data


def _path(loc: tuple[int | str, ...], prefix: str) -> str:
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


def _message(error: Any, cls: type, data: Any, prefix: str) -> str:
    """One line for pydantic's ``error`` (a dict of ``errors()``) in ``data`` checked against ``cls``."""
    context = error.get("ctx") or {}
    if isinstance(context.get("error"), ConfigError):  # a rule between keys (schema.py) wrote its own
        return str(context["error"])
    loc, kind, value = tuple(error["loc"]), error["type"], error.get("input")
    path = _path(loc, prefix)
    names = [str(part) for part in loc if isinstance(part, str)]
    if kind == "unexpected_keyword_argument":
        section = _walk(cls, data, names[:-1])[1] if len(names) > 1 else cls
        valid = _keys(section)
        return f"{path}: unknown key{closest(names[-1], valid)}; valid keys here: {', '.join(valid)}"
    if kind in ("dataclass_type", "dataclass_args_type"):
        return f"{path or 'config'}: expected a mapping of keys to values, got {value!r}"
    _, hint, raw = _walk(cls, data, names)
    info = field_info(hint)
    if kind == "list_type":
        item = type_name(info.annotation)[5:-1]
        return f"{path}: expected a list ({NOUNS[item]} each), got {value!r}"
    if kind in _TYPE_WORDS or (kind == "literal_error" and not isinstance(value, str)):
        return f"{path}: expected {_TYPE_WORDS.get(kind, 'a string')}, got {value!r}"
    # a value of the right type out of range: name the whole key's value (a list, not its item)
    value = to_number(raw) if info.annotation is float else raw
    return f"{_path(tuple(names), prefix)}: got {value!r}, expected {expected_text(info)}"


def _validate(cls: type, data: Any, prefix: str = "") -> Any:
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as exc:
        raise ConfigError(_message(exc.errors()[0], cls, data, prefix)) from None


def _check_unused(data: dict[str, Any], sections: dict[str, type], why: str) -> None:
    """Check the sections this kind of run leaves unused; warn of each value there that is not the default.

    ``config.yaml`` lists every section, so a stored run holds them; a value off its default does nothing
    (a warning, not an error: a run stored before a default changed still loads).

    Raises:
        ConfigError: an unknown key or a value of the wrong type there.
    """
    defaults = section_defaults(sections)
    for name, cls in sections.items():
        if name not in data:
            continue
        given = dataclasses.asdict(_validate(cls, data[name], name))
        for key, value in given.items():
            if value != defaults[name][key]:
                warnings.warn(
                    f"{name}.{key} = {value!r}: ignored, {why} does not use the {name} section "
                    f"(it stays at the default {defaults[name][key]!r})",
                    UserWarning,
                    stacklevel=3,
                )


def config_from_dict(data: dict[str, Any] | None) -> AnyConfig:
    """Build and check a config from nested plain data (missing keys take their defaults).

    ``data.dataset`` set gives a :class:`FewShotConfig`, anything else an :class:`RLConfig`.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of range, or keys that contradict.
    """
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping of keys to values, got {data!r}")
    section = data.get("data")
    dataset = section.get("dataset") if isinstance(section, dict) else None
    cls: type = FewShotConfig if dataset else RLConfig
    unused = RL_ONLY if dataset else FEWSHOT_ONLY
    why = f"a few-shot run (data.dataset {dataset!r})" if dataset else "a meta-RL run (data.dataset empty)"
    _check_unused(data, unused, why)
    config: AnyConfig = _validate(cls, {k: v for k, v in data.items() if k not in unused})
    for line in suspicious_settings(config):
        warnings.warn(line, UserWarning, stacklevel=2)
    return config


def validate(config: AnyConfig) -> AnyConfig:
    """Check a config built in code as a loaded one is checked; return it unchanged.

    Raises:
        ConfigError: as :func:`config_from_dict`.
    """
    config_from_dict(config_to_dict(config))
    return config


def config_to_dict(config: AnyConfig) -> dict[str, Any]:
    """Nested plain data (what ``config.yaml`` of a run holds): every key of :data:`KEY_ORDER`."""
    data = {**dataclasses.asdict(config), **section_defaults(unused_sections(config))}
    return {key: data[key] for key in KEY_ORDER}


def config_value(config: AnyConfig, path: str) -> Any:
    """The value at a dotted key such as ``trpo.max_kl``."""
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to nested plain data, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set: expected section.key=value, got {item!r}")
        path, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {path}: cannot parse value {raw!r}: {exc.problem}") from None
        node = data
        *parents, leaf = path.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {path}: {part!r} is not a section")
        node[leaf] = value
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> AnyConfig:
    """Read a YAML file strictly, apply ``--set`` overrides, check.

    Raises:
        ConfigError: a missing or malformed file, unknown key, wrong type or impossible value.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config: file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"config: {str(path)!r} is not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config: {str(path)!r} must hold a mapping of sections, got {type(data).__name__}")
    return config_from_dict(apply_overrides(data, overrides or []))
