"""The vocabulary and maths every room shares; imports nothing else from metarl.

:mod:`~metarl.core.types` (``EpisodeBatch``, ``MetaBatch``, the ``Adapter`` protocol, the glossary),
:mod:`~metarl.core.errors` (the errors the command turns into one line and an exit code),
:mod:`~metarl.core.returns` (discounted returns, GAE, masked statistics), :mod:`~metarl.core.functional`
(parameter
dicts and the ``torch.func`` inner loop), :mod:`~metarl.core.trpo` (conjugate gradient, trust-region step,
line
search), :mod:`~metarl.core.seeding` (seeds to generators) and :mod:`~metarl.core.tasks` (the
task-distribution
protocol and env-id checks).
"""
