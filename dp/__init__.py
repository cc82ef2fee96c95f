"""Differential privacy: noise, accounting and the DP-SGD trainer (a leaf library).

Empty for now but for its place: the gate issue adds OpenDP-based aggregates and the budget
arithmetic, the training issue adds the DP-SGD trainer. Like :mod:`policies` and
:mod:`connectors`, it never imports the application (:mod:`sandbox`).
"""

__all__: list[str] = []
