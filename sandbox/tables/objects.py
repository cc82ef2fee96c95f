"""Whole small objects on the warehouse's storage (local disk or ``s3://``): what several machines
must share besides the tables — the warehouse's keys and the unit dictionary's parts.

    data = objects.read(loc)             # bytes, or None when absent
    objects.write(loc, data)             # whole object; a reader never sees half of it
    objects.names(loc)                   # the names directly under a folder ([] when absent)

Local writes go to a temporary file, then are renamed; S3 PUTs are atomic by themselves. There is
no "create only if absent": the callers serialise creators with the catalog's commit lock.
"""

from __future__ import annotations

import os
import tempfile

from ..errors import InternalError
from .uris import Location


def _handler(folder: str, loc: Location):  # type: ignore[no-untyped-def]
    """delta-rs's object-store client rooted at ``folder``: the very client (and settings) the tables use.
    pyarrow's own S3 client signs payloads the way some S3-compatible stores refuse (s3proxy answers
    ``XAmzContentSHA256Mismatch``), so it is not used here."""
    from deltalake.fs import DeltaStorageHandler

    if loc.store is None:
        raise InternalError("an s3:// location without its object store")
    return DeltaStorageHandler(folder, loc.store.delta_options())


def _split(loc: Location) -> tuple[str, str]:
    folder, _, name = loc.uri.rpartition("/")
    return folder, name


def _failed(what: str, loc: Location, exc: BaseException) -> InternalError:
    # the URI names a bucket and a key only (never credentials); the store's message may name the endpoint
    return InternalError(f"could not {what} {loc.uri} on the warehouse's storage ({type(exc).__name__})",
                         details={"location": loc.uri, "error_class": type(exc).__name__})


def read(loc: Location) -> bytes | None:
    if loc.is_local:
        try:
            return loc.path.read_bytes()
        except FileNotFoundError:
            return None
    folder, name = _split(loc)
    try:
        with _handler(folder, loc).open_input_stream(name) as fh:
            return bytes(fh.read())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _failed("read", loc, exc) from None


def write(loc: Location, data: bytes) -> None:
    if loc.is_local:
        path = loc.path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    folder, name = _split(loc)
    try:
        # the Rust stream itself: pyarrow's PythonFile wrapper hands it a Buffer, which it refuses
        out = _handler(folder, loc)._handler.open_output_stream(name, None)
        out.write(data)
        out.close()  # one PUT of the whole object, on close
    except OSError as exc:
        raise _failed("write", loc, exc) from None


def names(loc: Location) -> list[str]:
    """The object names directly under the folder ``loc`` (sorted)."""
    if loc.is_local:
        try:
            return sorted(p.name for p in loc.path.iterdir() if p.is_file())
        except FileNotFoundError:
            return []
    import pyarrow.fs as pafs

    try:
        infos = _handler(loc.uri, loc).get_file_info_selector(pafs.FileSelector("", allow_not_found=True))
    except OSError as exc:
        raise _failed("list", loc, exc) from None
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)
