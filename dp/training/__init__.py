"""The platform's own DP-SGD trainer (a leaf library: never imports :mod:`sandbox`).

One facade per side of the sandbox wall:

* the supervisor (trusted, outside any sandbox) plans the privacy (:func:`.accounting.plan_privacy`),
  certifies it afterwards (:func:`.accounting.certify`), checks custom graphs (:func:`.graph.check_graph`) and
  weights (:func:`.weights.reserialise`), and writes the model card (:func:`.card.model_card`);
* the trainer sandbox runs :func:`dp.training.entry.train_main`; the user's sandbox runs
  :func:`dp.training.entry.export_main` for custom models.

Subpackages by concept: ``spec`` (what a run is), ``features`` (declared encoding), ``models``
(declarative builders), ``graph`` (custom models as checked graphs), ``accounting`` (σ and ε),
``trainer`` (DP-SGD: book-keeping or Opacus), ``rng`` (batches and noise), ``threads`` (how many), ``weights`` (safetensors), ``evaluate`` (DP held-out metrics),
``mia`` (membership inference), ``card`` (model card). Modules that need torch import it
themselves, so the supervisor can read specs and weights without it.
"""

from .errors import ModelRefused, SpecInvalid, TrainingError, WeightsRefused
from .spec import CategoricalFeature, ModelSpec, NumericFeature, TrainConfig

__all__ = ["CategoricalFeature", "ModelRefused", "ModelSpec", "NumericFeature", "SpecInvalid", "TrainConfig",
           "TrainingError", "WeightsRefused"]
