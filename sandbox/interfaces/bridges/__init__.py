"""Bridges: the warehouse speaking other platforms' protocols, through the same facade.

* :mod:`sandbox.interfaces.bridges.syft.bridge` — the warehouse as a PySyft (syft 0.10 + syft-rds) data owner:
  Syft datasets carry the warehouse's mock data and a pointer; Syft jobs run as warehouse jobs
  (sandbox, broker, gate, budget, audit) and their outputs go back only after the stewards approve.

A bridge holds no domain rule of its own: every action it takes on the warehouse is a facade
call made as a named warehouse user, checked and audited like any other.
"""

__all__ = ["syft"]
