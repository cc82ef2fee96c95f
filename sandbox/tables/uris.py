"""Storage locations are URIs: ``file:///abs/path`` today, object storage (``s3://``…) later.

The catalog records each table's location as a URI (``Dataset.table_path``), and
``Settings.home`` accepts a ``file://`` URI as well as a path, so the code that moves to object
storage is this module and :mod:`sandbox.tables.storage` — not every caller. Only ``file`` is accepted
for now: other schemes are refused (fail closed) until their Delta commits are safe (see
ARCHITECTURE.md, "Storage locations").
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import InvalidInput

SUPPORTED_SCHEMES = ("file",)


def to_uri(location: str | Path) -> str:
    """``/a/b`` or ``file:///a/b`` -> ``file:///a/b`` (absolute, normalised)."""
    return to_path(location).as_uri()


def to_path(location: str | Path) -> Path:
    """A local path for a ``file://`` URI or a plain path; other schemes are refused."""
    if isinstance(location, Path):
        return location.absolute()
    text = str(location)
    if "://" not in text:
        return Path(text).absolute()
    parts = urlsplit(text)
    if parts.scheme not in SUPPORTED_SCHEMES:
        raise InvalidInput(f"storage scheme {parts.scheme[:20]!r} is not supported yet (only file://)",
                           details={"field": "location"})
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput("file:// URIs must name a local path (file:///...)", details={"field": "location"})
    return Path(unquote(parts.path)).absolute()
