"""Secret keys kept in the warehouse's ``secrets/`` directory (never in the catalog database).

With table storage of its own (``TWH_STORAGE_URI``: workers on several machines), the keys also live
there and ``secrets/`` is each machine's copy (:func:`share_keys`)."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path


def load_or_create_key(path: Path) -> bytes:
    """A 32-byte key at ``path`` (mode 0600 in a 0700 folder), created once; safe across processes."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


def load_or_create_signing_key(path: Path) -> bytes:
    """The warehouse's Ed25519 signing key at ``path`` as PKCS#8 PEM (mode 0600 in a 0700
    folder), created once; safe across processes. Signs each release's provenance statement
    (:mod:`sandbox.release.provenance`)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    from cryptography.hazmat.primitives import serialization  # only when a key is made
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    # written whole under a temporary name, then linked in: a reader never sees half a key, and
    # when two processes race, the first link wins and both use its key
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signing-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
    finally:
        os.unlink(tmp)
    return pem


def share_keys(secrets_dir: Path, creators: dict[str, Callable[[Path], object]],
               fetch: Callable[[str], bytes | None], store: Callable[[str, bytes], None],
               lock: AbstractContextManager[object]) -> None:
    """Make ``secrets_dir`` hold the warehouse's shared keys (workers on several machines).

    Every machine of one warehouse must seal the audit chain, key the unit dictionary and sign
    provenance with the same keys, or one machine's records fail another's verification and one
    unit gets two ids. The keys live in the shared storage (``fetch``/``store``: the object store
    the tables live on); ``secrets_dir`` is this machine's private copy of them, which every reader
    keeps using. The first machine creates each missing key (``creators[name](path)`` writes it in
    its format) under ``lock`` (the catalog's commit lock: one creator at a time, on any machine).
    A local key that differs from the shared one is refused: records it sealed would not verify."""
    from ..errors import Conflict

    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with lock:
        for name, create in creators.items():
            path = secrets_dir / name
            shared = fetch(name)
            try:
                local: bytes | None = path.read_bytes()
            except FileNotFoundError:
                local = None
            if shared is None:
                create(path)  # this machine's key (made now, or kept from before it shared its storage)
                store(name, path.read_bytes())
            elif local is None:
                fd, tmp = tempfile.mkstemp(dir=secrets_dir, prefix=".shared-")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(shared)
                    os.chmod(tmp, 0o600)
                    os.replace(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            elif local.strip() != shared.strip():
                raise Conflict(f"this machine's key secrets/{name} differs from the warehouse's shared one: records "
                               "it made would not verify elsewhere; move it away (or start from an empty home) "
                               "to use the shared key", details={"rule": "shared_keys", "key": name})
