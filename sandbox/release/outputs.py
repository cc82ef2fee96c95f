"""Checking and re-serialising the files a job wants to export.

The runner has already refused anything but small regular files with safe names. Here trusted
code parses each file and writes it again, so what the steward approves is what our code wrote.
Anything that does not parse is refused, with the reason (never the content).

**CSV** is parsed and written by :func:`write_csv`: a cell is quoted when it holds a comma, a
quote, a CR or an LF (a bare CR must be quoted too, or a spreadsheet reads it as a row break
and the rest of the cell as a new, unneutralised cell), and every *line* of a cell that a
spreadsheet would run as a formula gets a ``'`` in front: a line that starts with ``=``, ``+``,
``-``, ``@``, a tab or a CR, or their full-width forms ``＝ ＋ － ＠``, at the start of the cell
and after every CR, LF or CRLF inside it (spaces or double quotes before the trigger count as
nothing: an importer may trim them, or one that starts a row at every line break may take them
for quoting). A cell that is exactly a plain decimal number
(``-3``, ``+1.5e3``) stays as it is.

**JSON** is parsed (no NaN/Infinity, at most :data:`MAX_JSON_DEPTH` levels) and written back
compactly, so re-serialising never amplifies (an indented copy of a deeply nested document is
many times its size). Re-serialising can still grow a file a little (``9e15`` is written
``9000000000000000.0``), so the size cap applies to the bytes stored: the export is refused if
the re-written files together exceed ``max_bytes`` (by default the sandbox's own output cap).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..isolation.runner import SandboxLimits

#: What makes a spreadsheet (Excel, LibreOffice, Google Sheets) evaluate a line of a cell.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
MAX_JSON_DEPTH = 32
#: The re-written files of one export together, at most: what the sandbox lets a job write.
MAX_STORED_BYTES = SandboxLimits().max_output_bytes

_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# A line starts at the start of the cell and after each CR, LF or CRLF; a trigger there (after any
# spaces or double quotes, which an importer may trim or take for quoting) is neutralised.
_LINE_START_TRIGGER = re.compile('(?:^|(?<=[\r\n]))(?=[ "]*[' + re.escape("".join(FORMULA_PREFIXES)) + "])")
_NEEDS_QUOTES = re.compile('[,"\r\n]')


class _Output(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True)
class GatedFile:
    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def escape_formula(cell: str) -> str:
    """Neutralise every line of a cell a spreadsheet would evaluate (CSV injection), keeping plain numbers."""
    if _PLAIN_NUMBER.fullmatch(cell):
        return cell
    return _LINE_START_TRIGGER.sub("'", cell)


def _quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if _NEEDS_QUOTES.search(cell) else cell


def write_csv(rows: Iterable[list[str]]) -> str:
    """Rows as CSV text: LF between rows, formulas neutralised, any cell with a comma, quote, CR
    or LF quoted (Python's writer leaves a bare CR unquoted when rows end in LF)."""
    lines = []
    for row in rows:
        cells = [_quoted(escape_formula(c)) for c in row]
        lines.append('""' if cells == [""] else ",".join(cells))  # as csv.writer: an empty cell, not an empty row
    return "".join(line + "\n" for line in lines)


def _csv(data: bytes) -> bytes:
    text = data.decode("utf-8")  # strict: a non-UTF-8 file is refused
    if "\x00" in text:
        raise ValueError("contains NUL bytes")
    return write_csv(csv.reader(io.StringIO(text, newline=""))).encode("utf-8")


def _depth(obj: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(obj, dict):
        return max((_depth(v, level + 1) for v in obj.values()), default=level)
    if isinstance(obj, list):
        return max((_depth(v, level + 1) for v in obj), default=level)
    return level


def _json(data: bytes) -> bytes:
    obj = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    _depth(obj)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False).encode("utf-8")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_REWRITERS = {".csv": _csv, ".json": _json}


def gate_weights(name: str, data: bytes, expected: Mapping[str, tuple[tuple[int, ...], str]],
                 metadata: Mapping[str, str] | None = None) -> GatedFile:
    """Model weights from the platform's trainer: parsed as safetensors (never pickle), checked
    against the expected tensor names/shapes/dtypes, and written again by trusted code.

    Deliberately not in ``_REWRITERS``: a job's own outputs can never be weights; only
    :mod:`sandbox.training.service` calls this, for the trainer sandbox's output.
    """
    from dp.training.weights import reserialise

    return GatedFile(name, reserialise(data, expected, metadata))


def with_trained(gated: list[GatedFile], trained: list[GatedFile]) -> tuple[list[GatedFile], list[str]]:
    """The export bundle of a training job: the job's own gated files plus the trainer's.

    A job output named like one of the trainer's files (``model_card.json``, ``model_card.png``
    ...) is refused: it would pass for the platform's own certificate in the bundle."""
    reserved = {f.name for f in trained}
    problems = [f"{f.name}: the name is reserved for the platform's trainer" for f in gated if f.name in reserved]
    return ([] if problems else [*gated, *trained]), problems


def gate_outputs(outputs: Iterable[_Output], max_bytes: int = MAX_STORED_BYTES) -> tuple[list[GatedFile], list[str]]:
    """Re-serialise every output; return the files, or the problems that refuse them all.

    ``max_bytes`` bounds what is stored: the re-written files together, not what the job wrote."""
    files: list[GatedFile] = []
    problems: list[str] = []
    stored = 0
    for o in outputs:
        suffix = "." + o.name.rsplit(".", 1)[-1].lower() if "." in o.name else ""
        rewrite = _REWRITERS.get(suffix)
        if rewrite is None:
            problems.append(f"{o.name}: only .csv and .json files can be exported")
            continue
        try:
            gated = GatedFile(o.name, rewrite(o.data))
        except (ValueError, RecursionError, csv.Error) as exc:
            # The reason names the file and the kind of problem, never its content.
            kind = type(exc).__name__ if not isinstance(exc, UnicodeDecodeError) else "not UTF-8"
            problems.append(f"{o.name}: does not parse as {suffix[1:].upper()} ({kind})")
            continue
        stored += len(gated.data)
        if stored > max_bytes:
            problems.append(f"{o.name}: re-written, the outputs exceed {max_bytes} bytes")
            continue
        files.append(gated)
    return ([] if problems else files), problems
