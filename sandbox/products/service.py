"""The products wing's face for the facade: one object holding its services, built once.

    products = Products(ctx, manifests)
    products.features / .models / .inference / .verification / .activity
    products.resolve_feature("avg_vat@1")    # what training jobs are handed to read the library
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..context import Context
from ..training.library import NamedFeature
from .activity import Activity
from .features import FeatureLibrary
from .inference import Inference
from .models import ModelCatalog
from .runtime import FeatureEngine, Runtime
from .verification import Verification

__all__ = ["Products"]


class Products:
    def __init__(self, ctx: Context, manifests: Callable[[str], Any]) -> None:
        self.features = FeatureLibrary(ctx, manifests)
        self.models = ModelCatalog(ctx, manifests, self.features)
        self.engine = FeatureEngine(ctx, self.features)
        self.inference = Inference(ctx, manifests, self.models, self.engine, Runtime(ctx))
        self.verification = Verification(ctx, manifests, self.features, self.engine)
        self.activity = Activity(ctx)

    def resolve_feature(self, ref: str) -> NamedFeature:
        return self.features.resolve(ref)
