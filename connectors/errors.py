"""The errors of the connectors library.

``connectors`` knows nothing of the application, so it has its own small tree; the application
translates it at its boundary (``raise InvalidInput(...) from exc``)::

    ConnectorError            connector_error     base: every error this library raises on purpose
    ├── ConfigError           connector_config    bad options, unknown connector kind, bad spec or suite
    └── SourceError           source_invalid      the data does not match what was declared
        └── SchemaError       schema_violation    values that do not convert to the declared types
                                                  (carries :class:`SchemaViolation` records)

Messages name the problem, the column and the row number when known; they never carry a raw
value. Truncated examples (at most 5, at most 20 characters each) travel separately in
:attr:`SchemaViolation.examples`, for the data's steward only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

#: the most examples a violation or a contract outcome keeps
MAX_EXAMPLES = 5
#: the most characters kept of one example value
EXAMPLE_CHARS = 20


def truncate_example(value: Any) -> str:
    """A value shortened for a steward-only report: never the whole raw value if it is long."""
    text = "null" if value is None else str(value)
    if len(text) > EXAMPLE_CHARS:
        return text[:EXAMPLE_CHARS] + "…"
    return text


@dataclass(frozen=True)
class SchemaViolation:
    """One declared-schema check that failed in one column (or in the file as a whole)."""

    #: ``type`` (value does not convert), ``not_null``, ``field_size``, ``header``, ``format``…
    check: str
    message: str
    column: str | None = None
    #: how many rows failed (0 when the check is about the file, not rows)
    count: int = 0
    #: 1-based data row numbers (row 1 is the first row after the header), at most 5
    rows: tuple[int, ...] = ()
    #: steward-only: truncated failing values, at most 5
    examples: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self, *, include_examples: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "column": self.column, "count": self.count,
                               "rows": list(self.rows), "message": self.message}
        if include_examples:
            out["examples"] = list(self.examples)
        return out


class ConnectorError(Exception):
    """Base of every error this library raises on purpose."""

    code: ClassVar[str] = "connector_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})


class ConfigError(ConnectorError):
    """The caller's configuration is wrong: options, connector kind, column specs, expectations."""

    code = "connector_config"


class SourceError(ConnectorError):
    """The data cannot be read as declared (encoding, NUL bytes, ragged rows, header, size...)."""

    code = "source_invalid"

    #: ``row`` is the 1-based data row (0 = the header row) when known
    def __init__(self, message: str, *, row: int | None = None, column: str | None = None,
                 check: str = "format", details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.row = row
        self.column = column
        self.check = check

    @property
    def violations(self) -> tuple[SchemaViolation, ...]:
        return (SchemaViolation(check=self.check, message=self.message, column=self.column,
                                count=1 if self.row else 0, rows=(self.row,) if self.row else ()),)


class SchemaError(SourceError):
    """Values that do not convert to their declared types (or nulls where none are allowed)."""

    code = "schema_violation"

    def __init__(self, violations: tuple[SchemaViolation, ...] | list[SchemaViolation], *,
                 rows_checked: int = 0) -> None:
        vs = tuple(violations)
        first = vs[0] if vs else None
        summary = "; ".join(v.message for v in vs[:3]) + (f"; and {len(vs) - 3} more" if len(vs) > 3 else "")
        super().__init__(f"declared schema violated: {summary}",
                         row=first.rows[0] if first and first.rows else None,
                         column=first.column if first else None, check=first.check if first else "type")
        self._violations = vs
        self.rows_checked = rows_checked

    @property
    def violations(self) -> tuple[SchemaViolation, ...]:
        return self._violations
