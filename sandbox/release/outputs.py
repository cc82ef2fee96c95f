"""Checking and re-serialising the files a job wants to export.

The runner has already refused anything but small regular files with safe names. Here trusted
code parses each file and writes it again, so what the steward approves is what our code wrote:
CSV is parsed and re-written (cells that a spreadsheet would run as a formula are prefixed with
``'``), JSON is parsed and re-dumped. Anything that does not parse is refused, with the reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MAX_JSON_DEPTH = 32


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
    """Neutralise a cell a spreadsheet would evaluate (CSV injection), keeping plain numbers."""
    if cell.startswith(FORMULA_PREFIXES) and not _is_number(cell):
        return "'" + cell
    return cell


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return cell.strip() == cell


def _csv(data: bytes) -> bytes:
    text = data.decode("utf-8")  # strict: a non-UTF-8 file is refused
    if "\x00" in text:
        raise ValueError("contains NUL bytes")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([escape_formula(c) for c in row])
    return out.getvalue().encode("utf-8")


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
    return (json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


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


def gate_outputs(outputs: Iterable[_Output]) -> tuple[list[GatedFile], list[str]]:
    """Re-serialise every output; return the files, or the problems that refuse them all."""
    files: list[GatedFile] = []
    problems: list[str] = []
    for o in outputs:
        suffix = "." + o.name.rsplit(".", 1)[-1].lower() if "." in o.name else ""
        rewrite = _REWRITERS.get(suffix)
        if rewrite is None:
            problems.append(f"{o.name}: only .csv and .json files can be exported")
            continue
        try:
            files.append(GatedFile(o.name, rewrite(o.data)))
        except (ValueError, RecursionError, csv.Error) as exc:
            # The reason names the file and the kind of problem, never its content.
            kind = type(exc).__name__ if not isinstance(exc, UnicodeDecodeError) else "not UTF-8"
            problems.append(f"{o.name}: does not parse as {suffix[1:].upper()} ({kind})")
    return ([] if problems else files), problems
