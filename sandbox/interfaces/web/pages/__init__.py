"""The web UI's pages, one module per area: :mod:`.session` (sign in/out), :mod:`.datasets`,
:mod:`.work` (jobs, exports, the steward's queue), :mod:`.model` (model card), :mod:`.audit`,
:mod:`.products` (feature library, model catalog, verification products), :mod:`.subject` (a data
subject's access log)."""

__all__ = ["audit", "datasets", "model", "products", "session", "subject", "work"]
