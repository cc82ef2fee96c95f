"""The web UI's pages, one module per area: :mod:`.session` (sign in/out), :mod:`.datasets`,
:mod:`.work` (jobs, exports, the steward's queue), :mod:`.model` (model card), :mod:`.audit`."""

__all__ = ["audit", "datasets", "model", "session", "work"]
