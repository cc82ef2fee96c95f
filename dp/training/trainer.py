"""DP-SGD done the way the accountant assumes, fast for the declarative models.

* **Poisson sampling** of row indices, vectorised (:func:`.rng.poisson_indices`), at the planned
  rate q every step; an empty batch still takes a noise-only step (the accountant counts every
  step). No per-sample ``DataLoader``.
* **σ fixed before training** (:func:`.accounting.plan_privacy`, one accountant run); the trainer
  never calls an accountant and never changes σ.
* **Randomness:** each step's batch and noise come from a generator seeded with 64 fresh bits
  of the OS CSPRNG (:mod:`.rng`, which also says what that does not guarantee); no seed can be
  passed in, so two runs never share noise.
* **Per-sample clipping**, two paths with the same arithmetic (clip factor
  ``min(1, C/(‖∇_i‖+1e-6))``, sum, add N(0, σ²C²), divide by the expected batch N·q):

  - ``bk`` — the declarative models (:mod:`.models`): book-keeping clipping
    (:mod:`.bookkeeping`): ghost norms and one matmul per layer, no autograd, noise added here;
  - ``opacus`` — anything else (custom graphs): Opacus' ``GradSampleModule`` + ``DPOptimizer``
    (ghost clipping for ``Linear``/``Embedding``, functorch for the rest), fed the same sampled
    indices and each step's generator.

  ``ModuleValidator`` must find nothing, and a model with buffers is refused.
* **Export** only parameters the DP update owns; nothing else leaves.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from .accounting import PrivacyPlan
from .errors import ModelRefused, TrainingError
from .features import Encoded
from .rng import gaussian, poisson_indices, step_generator, step_sampler
from .spec import TrainConfig

LOSSES = {"bce": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}
#: the largest first-layer input (rows × width, float32: 256 MB) the book-keeping path builds once
_INPUTS_MAX = 1 << 26
PATHS = ("auto", "bk", "opacus")


def _optimizer(cfg: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate)
    return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.momentum)


def validate_model(model: nn.Module) -> None:
    """Refuse models whose per-sample gradients would not be per-sample or that carry buffers."""
    from opacus.validators import ModuleValidator

    buffers = [n for n, _ in model.named_buffers()]
    errors = ModuleValidator.validate(model, strict=False)
    if any("BatchNorm" in str(e) for e in errors) or any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                                         for m in model.modules()):
        raise ModelRefused("BatchNorm mixes samples across the batch and keeps statistics in buffers; use LayerNorm")
    if errors:
        raise ModelRefused(f"the model is not DP-SGD compatible: {str(errors[0])[:200]}")
    if buffers:
        raise ModelRefused(f"the model has buffers ({', '.join(buffers[:5])}) that DP-SGD would never noise")


@dataclass
class TrainResult:
    state: dict[str, torch.Tensor]
    steps: int
    noise_multiplier: float
    #: mean training loss per epoch: exact statistics of the training rows — stewards only, never released
    epoch_losses: list[float] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time (all threads): robust to other load on the machine
    peak_rss_mb: float = 0.0
    path: str = ""

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    @property
    def samples_per_cpu_second(self) -> float:
        return self.samples / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tensors(data: Encoded) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.from_numpy(data.x_num), torch.from_numpy(data.x_cat), torch.from_numpy(data.y)


class _BKStep:
    """One DP-SGD step by book-keeping clipping (:mod:`.bookkeeping`), noise added here.

    The parameters are views of one flat tensor, which is what the optimizer updates; the clipped
    sums are written into views of one flat gradient buffer, so the noise, the division by the
    expected batch size and the update are a few operations per step whatever the layer count."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, plan: PrivacyPlan) -> None:
        from .bookkeeping import shape_of

        self.shape, self.loss = shape_of(model), cfg.loss
        self.params = list(model.parameters())
        if not all(p.requires_grad for p in self.params):
            raise TrainingError("every parameter of a declarative model is trained")
        with torch.no_grad():
            self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in self.params]))
        self.flat.grad = torch.zeros_like(self.flat)
        self.views: dict[int, torch.Tensor] = {}
        off = 0
        for p in self.params:
            p.data = self.flat.data[off:off + p.numel()].view_as(p)
            self.views[id(p)] = self.flat.grad[off:off + p.numel()].view_as(p)
            off += p.numel()
        self.optimizer: Any = _FlatSGD(self.flat, cfg.learning_rate, cfg.momentum) if cfg.optimizer == "sgd" \
            else _optimizer(cfg, [self.flat])
        self.std = plan.noise_multiplier * plan.max_grad_norm
        self.clip = plan.max_grad_norm
        self.expected = plan.n_train * plan.sample_rate

    def owned(self) -> set[int]:
        """The parameters whose values live in the flat tensor the optimizer updates."""
        lo = self.flat.data_ptr()
        hi = lo + self.flat.numel() * self.flat.element_size()
        storage = self.flat.untyped_storage().data_ptr()
        return {id(p) for p in self.params if p.untyped_storage().data_ptr() == storage and lo <= p.data_ptr() < hi}

    def bind(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor) -> None:
        """The training rows: a one-hot model's first-layer input is built once for all of them
        (a step then gathers its rows) while that stays small; otherwise per step."""
        from .bookkeeping import input_matrix

        self.rows = (x_num, x_cat, y)
        width = x_num.shape[1] + sum(self.shape.cardinalities)
        self.inputs = input_matrix(self.shape, x_num, x_cat) if len(y) * width <= _INPUTS_MAX else None

    def run(self, idx: torch.Tensor, gen: torch.Generator) -> float:
        x_num, x_cat, y = self.rows
        if self.inputs is not None:
            return self._step(x_num, x_cat, y[idx], gen, self.inputs[idx])
        return self._step(x_num[idx], x_cat[idx], y[idx], gen, None)

    def __call__(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> float:
        return self._step(x_num, x_cat, y, gen, None)

    def _step(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
              inputs: torch.Tensor | None) -> float:
        from .bookkeeping import clipped_sum_of_shape

        grad = self.flat.grad
        assert grad is not None
        loss_sum = 0.0
        if len(y):
            loss_sum = clipped_sum_of_shape(self.shape, x_num, x_cat, y, self.loss, self.clip, self.views,
                                            inputs).loss_sum
        else:
            grad.zero_()
        grad.add_(gaussian(grad.numel(), self.std, gen)).div_(self.expected)
        self.optimizer.step()
        return loss_sum


class _FlatSGD:
    """``torch.optim.SGD(lr, momentum)`` on the one flat parameter, without the optimiser's per-call
    machinery (hooks, profiling, grouping: ~50 µs a step, as much as the whole update of a small
    model). The same arithmetic, operation for operation, as torch's single-tensor SGD with no
    dampening, no weight decay, no Nesterov (the trainer's SGD): ``buf = g`` on the first step,
    ``buf = momentum·buf + g`` after; ``p -= lr·buf`` (``p -= lr·g`` without momentum)."""

    def __init__(self, flat: nn.Parameter, lr: float, momentum: float) -> None:
        self.flat, self.lr, self.momentum = flat, lr, momentum
        self.buf: torch.Tensor | None = None

    def step(self) -> None:
        grad = self.flat.grad
        assert grad is not None
        with torch.no_grad():
            if self.momentum == 0:
                self.flat.add_(grad, alpha=-self.lr)
                return
            if self.buf is None:
                self.buf = grad.detach().clone()
            else:
                self.buf.mul_(self.momentum).add_(grad)
            self.flat.add_(self.buf, alpha=-self.lr)


class _OpacusStep:
    """One DP-SGD step through Opacus (custom graphs), on the batch we sampled, with our generator."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, plan: PrivacyPlan, data: Encoded,
                 grad_sample_mode: str) -> None:
        from opacus import PrivacyEngine
        from opacus.data_loader import DPDataLoader

        # Opacus derives the expected batch size from a loader; it is never iterated (we sample).
        loader = DPDataLoader(TensorDataset(*_tensors(data)), sample_rate=plan.sample_rate)
        criterion = LOSSES[cfg.loss]()
        optimizer = _optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
        engine = PrivacyEngine(accountant="prv")
        made = engine.make_private(module=model, optimizer=optimizer, data_loader=loader,
                                   noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.max_grad_norm,
                                   poisson_sampling=False, grad_sample_mode=grad_sample_mode,
                                   criterion=criterion)
        if grad_sample_mode == "ghost":
            self.gsm, self.opt, self.crit, _ = made
        else:
            (self.gsm, self.opt, _), self.crit = made, criterion
        if abs(self.opt.expected_batch_size - plan.n_train * plan.sample_rate) > 1:
            raise TrainingError("Opacus did not keep the planned expected batch size")
        self.opt.secure_mode = True  # four-Gaussian noise, drawn from each step's generator
        self.gsm.train()

    def owned(self) -> set[int]:
        return {id(p) for group in self.opt.original_optimizer.param_groups for p in group["params"]}

    def bind(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor) -> None:
        self.rows = (x_num, x_cat, y)

    def run(self, idx: torch.Tensor, gen: torch.Generator) -> float:
        x_num, x_cat, y = self.rows
        return self(x_num[idx], x_cat[idx], y[idx], gen)

    def __call__(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> float:
        self.opt.generator = gen
        if len(y) == 0:
            _noise_only_step(self.opt)
            return 0.0
        self.opt.zero_grad(set_to_none=True)
        loss = self.crit(self.gsm(x_num, x_cat), y)
        loss.backward()
        self.opt.step()
        return float(loss.detach()) * len(y)


def _noise_only_step(optimizer: Any) -> None:
    """What Opacus' DPOptimizer does for an empty batch: zero sum + noise, scaled, then step."""
    from opacus.optimizers.optimizer import _generate_noise

    for p in optimizer.params:
        noise = _generate_noise(std=optimizer.noise_multiplier * optimizer.max_grad_norm, reference=p,
                                generator=optimizer.generator, secure_mode=True)
        p.grad = noise.view_as(p) / optimizer.expected_batch_size
    optimizer.original_optimizer.step()
    optimizer.original_optimizer.zero_grad()
    optimizer.zero_grad(set_to_none=True)


def choose_path(model: nn.Module, path: str = "auto") -> str:
    from .bookkeeping import supports

    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}")
    if path == "auto":
        return "bk" if supports(model) else "opacus"
    if path == "bk" and not supports(model):
        raise TrainingError("book-keeping clipping does not cover this model")
    return path


def train_dp(model: nn.Module, data: Encoded, cfg: TrainConfig, plan: PrivacyPlan, *, path: str = "auto",
             grad_sample_mode: str = "ghost", max_steps: int | None = None,
             after_epoch: Callable[[nn.Module, int], None] | None = None) -> TrainResult:
    """Train ``model`` in place under DP-SGD with ``plan``'s σ, q and number of steps.

    ``after_epoch(model, epoch)`` runs after each epoch (the held-out loss curve uses it)."""
    with warnings.catch_warnings():
        # Opacus warns about its own secure_mode (we draw secure noise ourselves, see above)
        # and about backward hooks on input-free layers; neither applies.
        warnings.simplefilter("ignore", UserWarning)
        return _train_dp(model, data, cfg, plan, choose_path(model, path), grad_sample_mode, max_steps, after_epoch)


def _train_dp(model: nn.Module, data: Encoded, cfg: TrainConfig, plan: PrivacyPlan, path: str,
              grad_sample_mode: str, max_steps: int | None,
              after_epoch: Callable[[nn.Module, int], None] | None) -> TrainResult:
    validate_model(model)
    if len(data) != plan.n_train:
        raise TrainingError("the training rows differ from the ones the privacy plan was made for")
    x_num, x_cat, y = _tensors(data)
    step = _BKStep(model, cfg, plan) if path == "bk" else _OpacusStep(model, cfg, plan, data, grad_sample_mode)
    step.bind(x_num, x_cat, y)
    steps_per_epoch = round(1 / plan.sample_rate)
    epochs = math.ceil(plan.steps / steps_per_epoch)
    limit = plan.steps if max_steps is None else min(plan.steps, max_steps)
    result = TrainResult({}, 0, plan.noise_multiplier, path=path)
    started, cpu_started = time.perf_counter(), time.process_time()
    model.train()
    for epoch in range(epochs):
        total, count = 0.0, 0
        for _ in range(steps_per_epoch):
            if result.steps >= limit:
                break
            idx = poisson_indices(plan.n_train, plan.sample_rate, step_sampler())
            total += step.run(idx, step_generator())
            count += len(idx)
            result.steps += 1
        result.samples += count
        result.epoch_losses.append(total / max(count, 1))
        if after_epoch is not None:
            after_epoch(model, epoch)
            model.train()
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    result.peak_rss_mb = _peak_rss_mb()
    owned = step.owned()
    base = model._module if hasattr(model, "_module") else model
    if set(map(id, base.parameters())) - owned:
        raise TrainingError("some parameters are not owned by the DP optimizer; nothing is released")
    result.state = {n: p.detach().clone().contiguous() for n, p in base.named_parameters() if id(p) in owned}
    return result


def train_plain(model: nn.Module, data: Encoded, cfg: TrainConfig, *, batch_size: int, steps: int) -> TrainResult:
    """Non-private training (shuffled fixed-size batches, sliced from tensors — the same vectorised
    batching as DP-SGD, so the benchmark compares clipping and noise, not data loading): the
    benchmarks' and tests' baseline only."""
    criterion = LOSSES[cfg.loss]()
    optimizer = _optimizer(cfg, list(model.parameters()))
    x_num, x_cat, y = _tensors(data)
    gen = step_generator()  # shuffling only; this baseline is not private
    result = TrainResult({}, 0, 0.0, path="nonprivate")
    started, cpu_started = time.perf_counter(), time.process_time()
    model.train()
    while result.steps < steps:
        total, count = 0.0, 0
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            if result.steps >= steps:
                break
            idx = perm[i:i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x_num[idx], x_cat[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            result.samples += len(idx)
            result.steps += 1
        result.epoch_losses.append(total / max(count, 1))
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    result.peak_rss_mb = _peak_rss_mb()
    result.state = {n: p.detach().clone().contiguous() for n, p in model.named_parameters()}
    return result


def predict(model: nn.Module, data: Encoded, batch: int = 4096) -> np.ndarray:
    """Raw model outputs (logits for ``bce``) for every row."""
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(data), batch):
            outs.append(model(torch.from_numpy(data.x_num[i:i + batch]), torch.from_numpy(data.x_cat[i:i + batch])))
    return torch.cat(outs).numpy().astype(np.float64) if outs else np.zeros(0)
