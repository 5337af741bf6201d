"""Errors raised for user mistakes: each names the field, the value received and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A configuration value (YAML, ``--set`` or command-line flag) that cannot be used."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not match the run."""


def closest(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""`` when none is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""
