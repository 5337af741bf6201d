"""The app: the ``metarl`` commands and ``build``, the composition root; it may import everything in metarl.

One module per command (``train``, ``evaluate``, ``baseline``, ``render``, ``benchmark``);
:mod:`~metarl.app.build` turns a config into a task distribution, a learner and a collector, and
:mod:`~metarl.app.main` holds the parser and ``main``. It is the only room that imports :mod:`metarl.envs`
and :mod:`metarl.agents`; nothing imports it but :mod:`metarl.cli`.
"""
