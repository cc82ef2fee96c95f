"""Errors of the DP trainer, rooted in the ``dp`` library's one error (:class:`dp.errors.DPError`).

::

    DPError
     └─ TrainingError          code: training_error (a bug or an unusable run; nothing is released)
         ├─ SpecInvalid         code: invalid_train_spec  (the train block cannot be honoured safely)
         ├─ ModelRefused        code: model_refused       (a custom graph failed a safety check)
         └─ WeightsRefused      code: weights_refused     (weights are not what the model declares)

``reason`` is one short sentence meant for the job's author and the stewards; it never quotes
data values.
"""

from __future__ import annotations

from ..errors import DPError


class TrainingError(DPError):
    default_code = "training_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code or self.default_code)

    @property
    def reason(self) -> str:
        return self.message


class SpecInvalid(TrainingError):
    default_code = "invalid_train_spec"


class ModelRefused(TrainingError):
    default_code = "model_refused"


class WeightsRefused(TrainingError):
    default_code = "weights_refused"
