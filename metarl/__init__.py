"""metarl: model-agnostic meta-learning for Gymnasium and MuJoCo.

One import name. The task distributions and the learners live in the repository's top-level ``envs/`` and
``agents/`` folders and install as :mod:`metarl.envs` and :mod:`metarl.agents` (``package-dir`` in
``pyproject.toml``). Run from a source checkout instead (``PYTHONPATH=CHECKOUT``, as for a job started from
a separate worktree), those two folders sit beside this one; :func:`_find_checkout_subpackages` then imports
them from the same checkout as this package, never from another install.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

#: the subpackages that live in top-level folders of the repository
CHECKOUT_SUBPACKAGES = ("envs", "agents")


class _CheckoutFinder(importlib.abc.MetaPathFinder):
    """Finds ``metarl.envs`` and ``metarl.agents`` in the checkout's ``envs/`` and ``agents/`` folders."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec of ``ROOT/NAME/__init__.py`` for ``metarl.NAME``; ``None`` for every other module."""
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in CHECKOUT_SUBPACKAGES:
            return None
        init = self.root / name / "__init__.py"
        locations = [str(init.parent)]
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=locations)


def _find_checkout_subpackages() -> None:
    """Put :class:`_CheckoutFinder` first when this package runs from a source checkout (not from a wheel)."""
    here = Path(__file__).resolve().parent
    root = here.parent
    installed = any((here / name).is_dir() for name in CHECKOUT_SUBPACKAGES)
    checkout = (root / "pyproject.toml").is_file() and all(
        (root / name / "__init__.py").is_file() for name in CHECKOUT_SUBPACKAGES
    )
    if checkout and not installed and not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutFinder(root))


_find_checkout_subpackages()
