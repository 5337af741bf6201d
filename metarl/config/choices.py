"""Every choice list of the config, written once as a ``Literal``.

Modules that branch on or check one of these values take the list from here (``typing.get_args(Backend)``)
instead of writing it again.
"""

from __future__ import annotations

from typing import Literal

#: ``method``: what a meta-RL run trains (``metarl baseline`` sets ``pretrained`` and ``oracle``)
Method = Literal["maml", "pretrained", "oracle"]
#: ``method`` of a few-shot run: MAML and its variants are chosen with ``inner.*``
FewShotMethod = Literal["maml"]
#: ``policy.activation``
Activation = Literal["relu", "tanh", "elu"]
#: ``inner.adapt``: the parameters the inner loop adapts
Adapt = Literal["all", "head"]
#: ``inner.estimator``: the inner policy-gradient loss of meta-RL
Estimator = Literal["reinforce", "lvc"]
#: ``meta.batching``: how the tasks of a few-shot meta-batch are computed
Batching = Literal["auto", "loop", "vmap", "grouped"]
#: ``meta.second_order_batch_norm``
BatchNormGrad = Literal["auto", "pytorch", "closed_form"]
#: ``trpo.fisher_product``
FisherProduct = Literal["jfj", "double_backprop", "closed_form"]
#: ``oracle.algorithm``: what trains the oracle baseline
OracleAlgorithm = Literal["ppo", "trpo"]
#: ``collector.vectorization``
Vectorization = Literal["auto", "vector_entry_point", "sync", "async"]
#: ``collector.batch_unit``: what ``meta.episodes_per_task`` counts per task
BatchUnit = Literal["episodes", "steps"]
#: ``evaluation.split``: which tasks the adaptation curve is measured on
Split = Literal["test", "train"]
#: ``evaluation.query_action``: how the episodes that measure the curve act
QueryAction = Literal["sample", "mean"]
#: ``collector.backend``
Backend = Literal["local", "subprocess", "ray"]
#: ``collector.start_method``
StartMethod = Literal["spawn", "forkserver"]
#: ``data.dataset`` of a few-shot run (empty: meta-RL)
Dataset = Literal["sinusoid", "omniglot", "miniimagenet"]
#: ``data.dataset``: empty for a meta-RL run, else a few-shot dataset
DataSource = Literal["", Dataset]
