"""Secret keys kept in the warehouse's ``secrets/`` directory (never in the catalog database)."""

from __future__ import annotations

import os
import secrets
import tempfile
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
