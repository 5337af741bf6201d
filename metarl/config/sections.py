"""The sections every run has, meta-RL and few-shot: ``inner``, ``meta``, ``evaluation``, ``logging``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from pydantic import ConfigDict

from metarl.config.choices import Adapt, Batching, BatchNormGrad, Estimator, QueryAction, Split
from metarl.config.fields import Bool, Int, Number, Str, setting

#: every section rejects keys it does not define
STRICT = ConfigDict(extra="forbid")


def inner_step_sizes(first: float, later: float, steps: int) -> list[float]:
    """One step size per inner step: ``first``, then ``later`` (0: ``first / 2``; the paper's alpha, alpha/2).

    Example:
        ``inner_step_sizes(0.1, 0.0, 3) == [0.1, 0.05, 0.05]``
    """
    later = later or first / 2
    return [first if k == 0 else later for k in range(steps)]


@dataclass
class InnerConfig:
    """Adaptation."""

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    steps: Annotated[
        Int,
        setting(
            "Inner policy-gradient steps per task during meta-training. Each step collects fresh support "
            "episodes with the parameters adapted so far.",
            paper="`1`",
            ge=1,
        ),
    ] = 1
    step_size: Annotated[
        Number,
        setting(
            "Inner learning rate alpha.",
            paper="`0.1` (the paper's code used 0.5 for navigation)",
            gt=0,
        ),
    ] = 0.1
    first_order: Annotated[
        Bool,
        setting(
            "Detach the inner gradient inside the TRPO objective. This gives first-order MAML, with no "
            "second-order terms in the meta-gradient. Sampling always adapts with detached gradients, "
            "whatever this is set to.",
        ),
    ] = False
    learn_step_size: Annotated[
        Bool,
        setting(
            "Meta-SGD (arXiv:1707.09835): one learned step size per parameter entry, initialised to "
            "`inner.step_size`, meta-trained with the network and saved in the checkpoint "
            "(`step_size.<parameter>` entries beside the policy's). Few-shot: evaluation uses them for every "
            "step. Meta-RL (method `maml` only): TRPO updates them with the policy under the same KL limit, "
            "`metrics.csv` gets `inner/step_size_mean`, `_min`, `_max`, and evaluation scales them as it "
            "scales alpha (step 1: the learned rates; later steps: half of them; `evaluation.*_step_size` set"
            " a multiple `value / inner.step_size`).",
            paper="Meta-SGD",
        ),
    ] = False
    adapt: Annotated[
        Adapt,
        setting(
            "Few-shot only (meta-RL refuses `head`). `head` adapts only the last linear layer in the inner "
            "loop (ANIL, arXiv:1909.09157); the body still gets the meta-gradient.",
            paper="`all`",
            expected="all (MAML) or head (ANIL)",
        ),
    ] = "all"
    estimator: Annotated[
        Estimator,
        setting(
            "Meta-RL, method `maml` only. The form of the inner policy-gradient loss that the meta-gradient "
            "differentiates. `reinforce` is the paper's `-log pi(a|s) A`. `lvc` is ProMP's low-variance "
            "curvature form (Rothfuss et al. 2018, arXiv:1810.06784), `-pi(a|s) / pi_b(a|s) A` with `pi_b` "
            "the policy that collected the support episodes. At those parameters both give the same inner "
            "step, so sampling and evaluation are unchanged; with `lvc` the inner step's Jacobian also has "
            "the term `alpha * mean_t A_t grad log pi_t grad log pi_t^T`, the dependence of the support "
            "episodes' distribution on the meta-parameters that the paper's estimator drops. In the line "
            "search the ratio reweights the support episodes, so TRPO checks the objective whose gradient and"
            " Fisher built its step (tested against that term computed by hand and against finite "
            "differences, `tests/agents/test_maml_trpo.py`). The first version (commit 2bc034c) used "
            "`stop_grad(pi(a|s))` for `pi_b`, which left the line search on the paper's objective; see "
            "RESULTS.md. Cannot change on `--resume`.",
            paper="ProMP's LVC",
            expected="reinforce (the paper) or lvc (ProMP)",
        ),
    ] = "reinforce"


@dataclass
class MetaConfig:
    """Outer loop."""

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    batch_size: Annotated[
        Int,
        setting(
            "Tasks per meta-batch (`N`).",
            paper="20 navigation, 40 locomotion",
            ge=1,
        ),
    ] = 40
    episodes_per_task: Annotated[
        Int,
        setting(
            "Episodes per task (`E`), in every support set and in the query set. The baseline and the "
            "normalisation need at least 2.",
            paper="20 (40 for Ant direction)",
            ge=2,
            expected="an integer >= 2 (the baseline and normalisation need 2)",
        ),
    ] = 20
    iterations: Annotated[
        Int,
        setting(
            "Meta-iterations. It may change on `--resume`.",
            paper="up to 500",
            ge=1,
        ),
    ] = 500
    gamma: Annotated[
        Number,
        setting(
            "Discount factor. It is used for the baseline's regression targets and for GAE.",
            paper="0.99",
            ge=0,
            le=1,
        ),
    ] = 0.99
    gae_lambda: Annotated[
        Number,
        setting(
            "GAE lambda. With 1.0 the advantage is the discounted return minus the baseline.",
            paper="1.0",
            ge=0,
            le=1,
        ),
    ] = 1.0
    normalize_advantages: Annotated[
        Bool,
        setting(
            "Shift and scale each task's advantages to mean 0 and variance 1 over its real steps. This is "
            "done before the inner loss and before the query surrogate.",
            paper="— (rllab centres advantages)",
        ),
    ] = True
    baseline_reg: Annotated[
        Number,
        setting(
            "Ridge coefficient of the linear feature baseline. The baseline is refit on each task's episodes "
            "every time advantages are computed.",
            paper="rllab: 1e-5",
            gt=0,
        ),
    ] = 1e-5
    learning_rate: Annotated[
        Number,
        setting(
            "Few-shot only. Adam's learning rate for the meta-update.",
            paper="0.001",
            gt=0,
        ),
    ] = 1e-3
    batching: Annotated[
        Batching,
        setting(
            "Few-shot only. How the tasks of a meta-batch are computed. `grouped` (what `auto` picks): "
            "parameters with a task axis, batched matrix products and grouped convolutions (tasks folded into"
            " channels). `vmap`: `torch.func.vmap` over tasks; refused for second-order conv nets, whose "
            "batch-norm second derivative it gets wrong in torch 2.13. `loop`: one task at a time, the tested"
            " reference. All give the same numbers.",
        ),
    ] = "auto"
    second_order_batch_norm: Annotated[
        BatchNormGrad,
        setting(
            "Few-shot conv nets with `grouped` batching only (the MLP, `loop` and `vmap` ignore it). How the "
            "second-order meta-gradient differentiates batch norm's backward. `closed_form`: the formula "
            "written out in `agents/batch_norm.py`, which makes far fewer passes over the activations (about "
            "1.3x faster second-order Omniglot meta-updates, [BENCHMARKS.md](BENCHMARKS.md)). `pytorch`: "
            "PyTorch's own double backward, the reference. `auto`: `closed_form` for second-order MAML, "
            "`pytorch` for first order, which never differentiates the backward. Both give the same numbers "
            "(float64 tests agree to 1e-9).",
        ),
    ] = "auto"


@dataclass
class EvaluationConfig:
    """Adaptation curve at the end of training and in `metarl evaluate`.

    Few-shot runs evaluate on `evaluation.tasks` tasks of `evaluation.split` (paper: 600 test tasks) and
    report the query set's mean squared error (regression) or accuracy (classification) after
    0..`evaluation.steps` steps; `evaluation.episodes` is not used.
    """

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    tasks: Annotated[
        Int,
        setting(
            "New tasks sampled for the curve.",
            paper="40",
            ge=2,
            expected="an integer >= 2 (for a standard error)",
        ),
    ] = 40
    steps: Annotated[
        Int,
        setting(
            "Inner steps. The curve has `steps + 1` points. Step 1 uses `inner.step_size` and later steps use"
            " half of it.",
            paper="3",
            ge=0,
        ),
    ] = 3
    episodes: Annotated[
        Int,
        setting(
            "Episodes per task at every point of the curve.",
            paper="20",
            ge=2,
        ),
    ] = 20
    seed: Annotated[
        Int,
        setting(
            "Seeds the evaluation tasks, reset seeds and action noise. They come from a `SeedSequence` stream"
            " that training never uses, even if `evaluation.seed == seed`.",
            ge=0,
        ),
    ] = 1
    first_step_size: Annotated[
        Number,
        setting(
            "Step size of the first evaluation step; 0 means `inner.step_size`. `metarl evaluate "
            "--first-step-size`.",
            paper="alpha",
            ge=0,
            expected="a number >= 0 (0: inner.step_size)",
        ),
    ] = 0.0
    later_step_size: Annotated[
        Number,
        setting(
            "Step size of every later evaluation step; 0 means half the first. `metarl evaluate "
            "--later-step-size`.",
            paper="alpha / 2 (few-shot: alpha)",
            ge=0,
            expected="a number >= 0 (0: half the first step size)",
        ),
    ] = 0.0
    split: Annotated[
        Split,
        setting(
            "Which tasks the curve is measured on: `test`, the held-out ones where the task distribution "
            "has them (Meta-World's test goals and environments; few-shot test classes), or `train`, the "
            "training tasks (Meta-World's meta-train figures; few-shot training classes). Distributions "
            "without splits draw new tasks either way. `metarl evaluate --split`.",
            paper="test",
            allowed="`test`, `train`",
        ),
    ] = "test"
    query_episodes: Annotated[
        Int,
        setting(
            "Meta-RL only. 0: each point of the curve is the mean over that step's support episodes, which "
            "the next step adapts on (the MAML paper's protocol). N > 0: each point is measured on N more "
            "episodes per task with that step's parameters, and the `evaluation.episodes` support episodes "
            "only adapt (Meta-World's protocol: 10 adaptation episodes, then 3 evaluation episodes). "
            "`metarl evaluate --query-episodes`.",
            paper="0 (Meta-World: 3)",
            ge=0,
        ),
    ] = 0
    query_action: Annotated[
        QueryAction,
        setting(
            "Meta-RL only. How the measuring episodes act: `sample` from the Gaussian policy, or take its "
            "`mean` action (Meta-World's evaluation, its agents' `eval_action`; needs "
            "`evaluation.query_episodes` > 0, since support episodes must explore). Support episodes always "
            "sample. `metarl evaluate --query-action`.",
            paper="sample (Meta-World: mean)",
            allowed="`sample`, `mean` (with `evaluation.query_episodes` > 0)",
        ),
    ] = "sample"
    shots: Annotated[
        Int,
        setting(
            "Few-shot only. Support examples per class (sinusoid: points) of the test tasks; 0 means "
            "`data.shots`. `metarl evaluate --shots`.",
            paper="sinusoid: 5",
            ge=0,
            expected="an integer >= 0 (0: data.shots)",
        ),
    ] = 0
    query_shots: Annotated[
        Int,
        setting(
            "Few-shot only. Query examples per class of the test tasks; 0 means `data.query_shots`. `metarl "
            "evaluate --query-shots`.",
            ge=0,
            expected="an integer >= 0 (0: data.query_shots)",
        ),
    ] = 0

    def step_sizes(self, alpha: float) -> list[float]:
        """The ``steps`` step sizes for training step size ``alpha``: see :func:`inner_step_sizes`."""
        return inner_step_sizes(self.first_step_size or alpha, self.later_step_size, self.steps)


@dataclass
class LoggingConfig:
    """May all change on `--resume`."""

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    runs_root: Annotated[
        Str,
        setting(
            "Parent folder of the default run directory `<env>__<config stem>__s<seed>__<YYYYmmdd-HHMMSS>`, "
            "where `<env>` is the part of `env.id` after the last `/`. It has no effect when `--run-dir` is "
            "given.",
            allowed="any path",
        ),
    ] = "runs"
    checkpoint_every: Annotated[
        Int,
        setting(
            "Write `checkpoints/latest.pt` after every iteration divisible by this, and after the last "
            "iteration.",
            ge=1,
        ),
    ] = 10
    tensorboard: Annotated[
        Bool,
        setting(
            "Write TensorBoard event files to `tensorboard/`.",
        ),
    ] = True
    progress: Annotated[
        Bool,
        setting(
            "Show a tqdm progress bar on stderr with the last returns, KL and seconds per iteration.",
        ),
    ] = True
