"""Few-shot learner: batching modes agree, exact meta-gradient, Meta-SGD and ANIL, task-batched networks."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch.func import functional_call

from metarl.agents import fewshot_models
from metarl.agents.batch_norm import batch_norm
from metarl.agents.fewshot_models import FewShotConvNet, FewShotMLP, batched_forward
from metarl.agents.maml_supervised import SupervisedMAML, task_losses
from metarl.config import InnerConfig, MetaConfig
from metarl.core.errors import ConfigError
from metarl.core.functional import expand_params
from metarl.envs.fewshot import SinusoidTasks
from metarl.training.fewshot import TaskBatch, as_task_batch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets: one thread is several times faster than two on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


VARIANTS = {
    "maml": {},
    "fomaml": {"first_order": True},
    "metasgd": {"learn_step_size": True},
    "anil": {"adapt": "head"},
}


def _sine_batch(n: int = 4, seed: int = 0) -> TaskBatch:
    return as_task_batch(SinusoidTasks().sample(n, np.random.default_rng(seed), shots=5, query_shots=6))


def _image_batch(n: int = 3, ways: int = 3, shots: int = 2, size: int = 16, seed: int = 0) -> TaskBatch:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(ways).repeat_interleave(shots).expand(n, -1)
    support = (torch.rand(n, ways * shots, 1, size, size, generator=gen), labels)
    query = (torch.rand(n, ways * shots, 1, size, size, generator=gen), labels)
    return TaskBatch(support, query, tuple(range(n)))


def _learner(net, kind: str, steps: int = 2, **inner) -> SupervisedMAML:
    return SupervisedMAML(net, kind, InnerConfig(steps=steps, step_size=0.05, **inner), MetaConfig())


def _losses_and_grads(learner: SupervisedMAML, batch: TaskBatch, batching: str):
    learner.batching = batching
    after, before = learner.meta_losses(batch)
    grads = torch.autograd.grad(after.mean(), list(learner.model.parameters()))
    return after.detach(), before, grads


CASES = [("mlp", v, ("vmap", "grouped")) for v in VARIANTS]
CASES += [("conv", v, ("grouped",)) for v in VARIANTS] + [("conv-maxpool", "maml", ("grouped",))]
CASES += [("conv", "fomaml", ("vmap",))]  # vmap's second order through batch norm is wrong: see below


@pytest.mark.parametrize(("model", "variant", "modes"), CASES)
def test_batched_modes_equal_the_loop(model: str, variant: str, modes: tuple[str, ...]) -> None:
    """Losses, meta-gradients and adaptation curves of vmap / grouped batching equal the per-task loop."""
    torch.manual_seed(0)
    if model == "mlp":
        net, kind, batch = FewShotMLP(1, 1, (16, 16)), "regression", _sine_batch()
    else:
        net = FewShotConvNet((1, 16, 16), 3, filters=4, max_pool=model == "conv-maxpool")
        kind, batch = "classification", _image_batch()
    learner = _learner(net, kind, **VARIANTS[variant])
    reference = _losses_and_grads(learner, batch, "loop")
    curve = learner.adaptation_metrics(batch, [0.05, 0.05])
    assert curve.shape == (len(batch), 3)
    for batching in modes:
        after, before, grads = _losses_and_grads(learner, batch, batching)
        torch.testing.assert_close(after, reference[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(before, reference[1], rtol=1e-4, atol=1e-5)
        for got, want in zip(grads, reference[2], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(
            learner.adaptation_metrics(batch, [0.05, 0.05]), curve, rtol=1e-4, atol=1e-5
        )


def _double_image_batch() -> TaskBatch:
    batch = _image_batch()
    return TaskBatch(
        (batch.support[0].double(), batch.support[1]), (batch.query[0].double(), batch.query[1]), ()
    )


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("variant", ["maml", "metasgd", "anil"])
def test_closed_form_batch_norm_gives_the_same_second_order_meta_gradient(
    variant: str, steps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grouped batching with the closed-form batch-norm second derivative equals PyTorch's and the loop."""
    calls = []
    monkeypatch.setattr(fewshot_models, "batch_norm", lambda *a: calls.append(1) or batch_norm(*a))
    torch.manual_seed(0)
    net = FewShotConvNet((1, 16, 16), 3, filters=4).double()
    learner = _learner(net, "classification", steps=steps, **VARIANTS[variant])
    batch = _double_image_batch()
    assert learner.closed_form_batch_norm, "auto picks the closed form for second-order MAML"
    closed_form = _losses_and_grads(learner, batch, "grouped")
    assert len(calls) == 4 * (steps + 2), "every batch norm of every forward used the closed form"
    learner.closed_form_batch_norm = False
    for reference in (
        _losses_and_grads(learner, batch, "grouped"),
        _losses_and_grads(learner, batch, "loop"),
    ):
        torch.testing.assert_close(closed_form[0], reference[0], rtol=1e-9, atol=0)
        # atol: the conv biases' exact gradient is 0 (batch norm removes them); both give ~1e-17
        scale = max(g.abs().max().item() for g in reference[2])
        for got, want in zip(closed_form[2], reference[2], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12 * scale)


@pytest.mark.parametrize(
    ("choice", "first_order", "closed_form"),
    [("auto", False, True), ("auto", True, False), ("pytorch", False, False), ("closed_form", True, True)],
)
def test_second_order_batch_norm_choice(choice: str, first_order: bool, closed_form: bool) -> None:
    net = FewShotConvNet((1, 16, 16), 3, filters=4)
    inner = InnerConfig(first_order=first_order)
    learner = SupervisedMAML(net, "classification", inner, MetaConfig(second_order_batch_norm=choice))
    assert learner.closed_form_batch_norm is closed_form


def test_vmap_with_second_order_conv_is_refused() -> None:
    net = FewShotConvNet((1, 16, 16), 3, filters=4)
    with pytest.raises(ConfigError, match="meta.batching: vmap gives wrong second-order gradients"):
        SupervisedMAML(net, "classification", InnerConfig(), MetaConfig(batching="vmap"))


@pytest.mark.parametrize("batch_norm", ["closed_form", "pytorch"])
def test_grouped_second_order_conv_gradient_matches_finite_differences(batch_norm: str) -> None:
    """The directional derivative of the grouped-conv meta-loss equals central differences (float64)."""
    torch.manual_seed(0)
    learner = _learner(FewShotConvNet((1, 16, 16), 3, filters=4).double(), "classification")
    batch = _double_image_batch()
    learner.closed_form_batch_norm = batch_norm == "closed_form"
    params = list(learner.model.parameters())
    grads = _losses_and_grads(learner, batch, "grouped")[2]
    direction = [torch.randn_like(p) for p in params]

    def loss_at(eps: float) -> float:
        with torch.no_grad():
            moved = [p + eps * d for p, d in zip(params, direction, strict=True)]
            originals = [p.clone() for p in params]
            for p, m in zip(params, moved, strict=True):
                p.copy_(m)
            value = learner.meta_losses(batch)[0].mean().item()
            for p, o in zip(params, originals, strict=True):
                p.copy_(o)
        return value

    numeric = (loss_at(1e-7) - loss_at(-1e-7)) / 2e-7
    analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True)).item()
    assert analytic == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("max_pool", [False, True])
def test_batched_conv_forward_equals_each_task(max_pool: bool) -> None:
    """Grouped convolutions with per-task batch statistics give each task's own forward."""
    torch.manual_seed(1)
    net = FewShotConvNet((3, 20, 20), 4, filters=5, max_pool=max_pool)
    params = {k: v + 0.1 * torch.randn(3, *v.shape) for k, v in net.named_parameters()}  # differ per task
    x = torch.randn(3, 6, 3, 20, 20)
    out = batched_forward(net, params, x)
    for n in range(3):
        one = functional_call(net, {k: v[n] for k, v in params.items()}, (x[n],))
        torch.testing.assert_close(out[n], one, rtol=1e-4, atol=1e-5)


def test_paper_conv_net_shapes() -> None:
    omniglot = FewShotConvNet((1, 28, 28), 5, filters=64)
    mini = FewShotConvNet((3, 84, 84), 5, filters=32, max_pool=True)
    assert omniglot(torch.rand(2, 1, 28, 28)).shape == (2, 5) and omniglot.head.in_features == 64
    assert mini(torch.rand(2, 3, 84, 84)).shape == (2, 5) and mini.head.in_features == 32 * 5 * 5
    assert not list(omniglot.buffers()), "batch norm must keep no running statistics"


def test_second_order_meta_gradient_matches_finite_differences() -> None:
    torch.manual_seed(0)
    net = FewShotMLP(1, 1, (6,)).double()
    batch = _sine_batch(3)
    batch = TaskBatch(
        tuple(t.double() for t in batch.support), tuple(t.double() for t in batch.query), batch.tasks
    )
    params = {k: v.detach().clone() for k, v in net.named_parameters()}
    names = list(params)

    def objective(flat: torch.Tensor) -> torch.Tensor:
        current, offset = {}, 0
        for k in names:
            current[k] = flat[offset : offset + params[k].numel()].view_as(params[k])
            offset += params[k].numel()
        forward = functools.partial(batched_forward, net)
        after, _ = task_losses(
            expand_params(current, 3),
            0.1,
            batch.support,
            batch.query,
            forward=forward,
            kind="regression",
            steps=2,
            first_order=False,
            adapted=tuple(names),
        )
        return after.mean()

    theta = torch.cat([v.reshape(-1) for v in params.values()]).requires_grad_()
    (grad,) = torch.autograd.grad(objective(theta), theta)
    eps = 1e-6
    numeric = torch.stack(
        [
            (objective(theta.detach() + eps * e) - objective(theta.detach() - eps * e)) / (2 * eps)
            for e in torch.eye(theta.numel(), dtype=torch.float64)
        ]
    )
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-7)


def test_first_order_gradient_differs_from_second_order() -> None:
    torch.manual_seed(0)
    net, batch = FewShotMLP(1, 1, (16,)), _sine_batch()
    exact = _losses_and_grads(_learner(net, "regression"), batch, "vmap")[2]
    first = _losses_and_grads(_learner(net, "regression", first_order=True), batch, "vmap")[2]
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(exact, first, strict=True))


@pytest.mark.parametrize("first_order", [False, True])
def test_metasgd_step_sizes_receive_gradients_and_learn(first_order: bool) -> None:
    torch.manual_seed(0)
    learner = _learner(FewShotMLP(1, 1, (16,)), "regression", learn_step_size=True, first_order=first_order)
    rates = learner.model.learned_step_sizes()
    assert set(rates) == {k for k, _ in learner.net.named_parameters()}
    before = {k: v.detach().clone() for k, v in rates.items()}
    after, _ = learner.meta_losses(_sine_batch())
    after.mean().backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in learner.model.step_sizes.values())
    learner.step(_sine_batch(seed=1))
    assert any(not torch.equal(before[k], v) for k, v in learner.model.learned_step_sizes().items())


def test_anil_leaves_the_body_untouched_in_the_inner_loop() -> None:
    """Every forward sees the meta-parameters themselves for the body; only the head changes."""
    torch.manual_seed(0)
    net = FewShotConvNet((1, 16, 16), 3, filters=4)
    learner = _learner(net, "classification", adapt="head")
    assert learner.adapted == ("head.weight", "head.bias")
    seen = []

    def spy(params, x):
        seen.append(params)
        return functional_call(net, params, (x,))

    params = dict(net.named_parameters())
    batch = _image_batch()
    one = (batch.support[0][0], batch.support[1][0]), (batch.query[0][0], batch.query[1][0])
    after, _ = task_losses(
        params,
        0.05,
        *one,
        forward=spy,
        kind="classification",
        steps=2,
        first_order=False,
        adapted=learner.adapted,
    )
    assert len(seen) == 4  # two inner steps, the adapted query forward, the unadapted one
    for p in seen:
        assert all(p[k] is params[k] for k in params if not k.startswith("head."))
    assert not torch.equal(seen[2]["head.weight"], params["head.weight"])
    after.backward()
    assert net.convs[0].weight.grad is not None, "the body still gets the meta-gradient"


def test_step_lowers_the_query_loss_on_fixed_tasks() -> None:
    torch.manual_seed(0)
    learner = _learner(FewShotMLP(1, 1, (40, 40)), "regression", steps=1)
    learner.optimizer.param_groups[0]["lr"] = 0.01
    batch = _sine_batch(10)
    first = learner.step(batch)["meta/loss_after"]
    for _ in range(30):
        last = learner.step(batch)["meta/loss_after"]
    assert last < first
