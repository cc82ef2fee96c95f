"""Fixtures of the gate's tests; the helpers live in gate_fixtures (a unique module name)."""

from gate_fixtures import lookup, tables

__all__ = ["lookup", "tables"]
