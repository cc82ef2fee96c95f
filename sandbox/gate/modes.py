"""The release modes, by the name a policy gives in ``release_mode``.

    mode = RELEASE_MODES[plan.release_mode]
    released = mode.release(plan, engine_rows)

``sdc`` (:class:`.release.SdcRelease`) suppresses disclosive cells; ``dp``
(:class:`.dp_release.DpRelease`) adds OpenDP noise. A new mode is one more entry here.
"""

from __future__ import annotations

from .dp_release import DpRelease
from .release import ReleaseMode, SdcRelease

#: release_mode (from the policy) -> mode
RELEASE_MODES: dict[str, ReleaseMode] = {"sdc": SdcRelease(), "dp": DpRelease()}
