"""The ``metarl`` console script (``python -m metarl.cli`` runs it too); the app is :mod:`metarl.app`."""

from metarl.app.main import entry_point, main

__all__ = ["entry_point", "main"]

if __name__ == "__main__":
    entry_point()
