"""DP-SGD with Opacus, done the way the accountant assumes.

* **Poisson sampling** through a real :class:`opacus.data_loader.DPDataLoader` at the planned
  rate q; an empty batch still takes a noise-only step (the accountant counts every step).
* **σ fixed before training** (:func:`.accounting.plan_privacy`); the trainer never changes it.
* **Secure randomness:** one ``torch.Generator`` seeded from ``os.urandom`` drives both the batch
  sampling and the noise; no seed can be passed in, so two runs never share noise. The noise is
  drawn the way Opacus' ``secure_mode`` draws it (the sum of four Gaussians, against the
  floating-point attacks of Jin et al. 2021), without the unmaintained ``torchcsprng``.
* **Per-sample clipping** with ghost clipping for ``Linear``/``Embedding`` (Opacus' fast
  gradient clipping), functorch for anything else; ``ModuleValidator`` must find nothing, and a
  model with buffers is refused.
* **Export** only parameters owned by the DP optimizer.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .accounting import PrivacyPlan
from .errors import ModelRefused, TrainingError
from .features import Encoded
from .spec import TrainConfig

LOSSES = {"bce": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}


def secure_generator() -> torch.Generator:
    return torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little"))


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
    epoch_losses: list[float] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tensors(data: Encoded) -> TensorDataset:
    return TensorDataset(torch.from_numpy(data.x_num), torch.from_numpy(data.x_cat), torch.from_numpy(data.y))


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


def train_dp(model: nn.Module, data: Encoded, cfg: TrainConfig, plan: PrivacyPlan, *,
             grad_sample_mode: str = "ghost", max_steps: int | None = None) -> TrainResult:
    """Train ``model`` in place under DP-SGD with ``plan``'s σ, q and number of steps."""
    with warnings.catch_warnings():
        # Opacus warns about its own secure_mode (we draw secure noise ourselves, see above)
        # and about backward hooks on input-free layers; neither applies.
        warnings.simplefilter("ignore", UserWarning)
        return _train_dp(model, data, cfg, plan, grad_sample_mode, max_steps)


def _train_dp(model: nn.Module, data: Encoded, cfg: TrainConfig, plan: PrivacyPlan, grad_sample_mode: str,
              max_steps: int | None) -> TrainResult:
    from opacus import PrivacyEngine
    from opacus.data_loader import DPDataLoader

    validate_model(model)
    if len(data) != plan.n_train:
        raise TrainingError("the training rows differ from the ones the privacy plan was made for")
    gen = secure_generator()
    loader = DPDataLoader(_tensors(data), sample_rate=plan.sample_rate, generator=gen)
    criterion = LOSSES[cfg.loss]()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(cfg, params)
    engine = PrivacyEngine(accountant="prv")
    made = engine.make_private(module=model, optimizer=optimizer, data_loader=loader,
                               noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.max_grad_norm,
                               poisson_sampling=False,  # the loader above already samples (Poisson, our RNG)
                               grad_sample_mode=grad_sample_mode, criterion=criterion, noise_generator=gen)
    if grad_sample_mode == "ghost":
        gsm, dp_opt, dp_crit, dp_loader = made
    else:
        (gsm, dp_opt, dp_loader), dp_crit = made, criterion
    if dp_loader is not loader or abs(dp_opt.expected_batch_size - plan.n_train * plan.sample_rate) > 1:
        raise TrainingError("Opacus did not keep the planned Poisson sampler")
    dp_opt.secure_mode = True  # four-Gaussian noise, drawn from our generator
    steps_per_epoch = round(1 / plan.sample_rate)
    epochs = math.ceil(plan.steps / steps_per_epoch)
    result = TrainResult({}, 0, plan.noise_multiplier)
    started = time.perf_counter()
    gsm.train()
    for _ in range(epochs):
        total, count = 0.0, 0
        for x_num, x_cat, y in dp_loader:
            if result.steps >= plan.steps or (max_steps is not None and result.steps >= max_steps):
                break
            if len(y) == 0:
                _noise_only_step(dp_opt)
            else:
                dp_opt.zero_grad(set_to_none=True)
                loss = dp_crit(gsm(x_num, x_cat), y)
                loss.backward()
                dp_opt.step()
                total += float(loss.detach()) * len(y)
                count += len(y)
                result.samples += len(y)
            result.steps += 1
        result.epoch_losses.append(total / max(count, 1))
    result.seconds = time.perf_counter() - started
    result.peak_rss_mb = _peak_rss_mb()
    owned = {id(p) for group in dp_opt.original_optimizer.param_groups for p in group["params"]}
    base = gsm._module if hasattr(gsm, "_module") else gsm
    result.state = {n: p.detach().clone().contiguous() for n, p in base.named_parameters() if id(p) in owned}
    if set(map(id, base.parameters())) - owned:
        raise TrainingError("some parameters are not owned by the DP optimizer; nothing is released")
    return result


def train_plain(model: nn.Module, data: Encoded, cfg: TrainConfig, *, batch_size: int, steps: int) -> TrainResult:
    """Non-private training (shuffled fixed-size batches): the benchmarks' and tests' baseline only."""
    criterion = LOSSES[cfg.loss]()
    optimizer = _optimizer(cfg, list(model.parameters()))
    loader = DataLoader(_tensors(data), batch_size=batch_size, shuffle=True, generator=secure_generator())
    result = TrainResult({}, 0, 0.0)
    started = time.perf_counter()
    model.train()
    while result.steps < steps:
        total, count = 0.0, 0
        for x_num, x_cat, y in loader:
            if result.steps >= steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x_num, x_cat), y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
            result.samples += len(y)
            result.steps += 1
        result.epoch_losses.append(total / max(count, 1))
    result.seconds = time.perf_counter() - started
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
