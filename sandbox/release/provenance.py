"""Signed provenance of a release: an in-toto Statement in a DSSE envelope, and its offline check.

Every approved export carries ``provenance.intoto.jsonl``: one line, a DSSE envelope
(``payloadType`` ``application/vnd.in-toto+json``) whose payload is an in-toto Statement v1:

* ``subject``: each file of the bundle, by name and SHA-256;
* ``predicateType``: :data:`PREDICATE_TYPE` (documented in ``sandbox/release/provenance.md``);
* ``predicate``: the job (id, code hash, spec), each dataset and Delta version it read (with its
  grade and release mode), the digest of the gate's decisions (the job's ``query.*`` audit
  records), the ε/δ it spent, every steward's approval, and the bundle hash they approved.

The envelope is signed with the warehouse's Ed25519 key (``secrets/provenance_ed25519.pem``;
the public key: ``GET /v1/provenance/key``, ``twh export key``). :func:`verify_bundle` checks a
downloaded folder with the public key alone — no network, no warehouse: the signature, that the
file is exactly the canonical bytes signed, that the subjects are exactly the folder's other
files, and every file's SHA-256. Any changed byte fails.

This module needs only the standard library and ``cryptography`` (imported when signing or
verifying), so ``twh export verify`` runs on a machine with nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: the predicate of a warehouse release (sandbox/release/provenance.md); a name, never fetched
PREDICATE_TYPE = "https://training-warehouse.dev/provenance/release/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: the bundle's provenance file; jobs cannot write it (only .csv/.json leave the sandbox)
FILE_NAME = "provenance.intoto.jsonl"


def canonical(obj: Any) -> bytes:
    """The one serialisation that is signed and written: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature covers (type and body, length-prefixed)."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement(files: list[tuple[str, str]], predicate: dict[str, Any]) -> dict[str, Any]:
    """An in-toto Statement v1 over ``files`` (name, sha256), sorted by name."""
    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": n, "digest": {"sha256": d}} for n, d in sorted(files)],
            "predicateType": PREDICATE_TYPE, "predicate": predicate}


def _private(pem: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key is not an Ed25519 key")
    return key


def _public(pem: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ValueError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key


def _raw(public: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_info(private_pem: bytes) -> dict[str, str]:
    """What the warehouse publishes: the public key (PEM and raw base64) and its key id."""
    from cryptography.hazmat.primitives import serialization

    public = _private(private_pem).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"algorithm": "ed25519", "keyid": key_id(_raw(public)), "public_key_pem": pem.decode("ascii"),
            "public_key_b64": base64.b64encode(_raw(public)).decode("ascii")}


def key_id(raw_public: bytes) -> str:
    """A key's id: the SHA-256 of its 32 raw bytes, hex."""
    return hashlib.sha256(raw_public).hexdigest()


def sign(stmt: dict[str, Any], private_pem: bytes) -> bytes:
    """The provenance file's bytes: the DSSE envelope of ``stmt``, one canonical JSON line."""
    key = _private(private_pem)
    payload = canonical(stmt)
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode("ascii"),
                "signatures": [{"keyid": key_id(_raw(key.public_key())), "sig": base64.b64encode(sig).decode("ascii")}]}
    return canonical(envelope) + b"\n"


@dataclass
class Verification:
    """The outcome of :func:`verify_bundle`: ``ok`` only when ``problems`` is empty."""

    problems: list[str] = field(default_factory=list)
    statement: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)
    keyid: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        pred = (self.statement or {}).get("predicate") or {}
        return {"ok": self.ok, "problems": self.problems, "keyid": self.keyid, "files": self.files,
                "export": pred.get("export"), "job": {k: v for k, v in (pred.get("job") or {}).items() if k != "spec"},
                "datasets": pred.get("datasets"), "approvals": pred.get("approvals"), "privacy": pred.get("privacy"),
                "gate": pred.get("gate")}


def verify_envelope(data: bytes, public_pem: bytes) -> tuple[dict[str, Any] | None, list[str], str]:
    """Check one provenance file: (statement, problems, keyid). The signature must verify under
    ``public_pem`` and the file must be exactly the canonical line that was written (so no byte of
    it can change, not even outside the signed payload)."""
    try:
        public = _public(public_pem)
    except ValueError as exc:
        return None, [f"key: {exc}"], ""
    kid = key_id(_raw(public))
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, [f"{FILE_NAME}: not one JSON line (it was changed or cut)"], kid
    if not isinstance(envelope, dict):
        return None, [f"{FILE_NAME}: not a DSSE envelope"], kid
    problems = []
    if canonical(envelope) + b"\n" != data:
        problems.append(f"{FILE_NAME}: its bytes are not the ones written (changed outside the signed payload)")
    sigs = envelope.get("signatures")
    try:
        payload = base64.b64decode(str(envelope.get("payload")), validate=True)
    except ValueError:
        return None, problems + [f"{FILE_NAME}: the payload is not base64"], kid
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        problems.append(f"{FILE_NAME}: payloadType is not {PAYLOAD_TYPE}")
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        return None, problems + [f"{FILE_NAME}: expected exactly one signature"], kid
    if sigs[0].get("keyid") != kid:
        problems.append("signature: made with another key (its keyid is not this public key's)")
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(base64.b64decode(str(sigs[0].get("sig")), validate=True),
                      pae(str(envelope.get("payloadType")), payload))
    except (InvalidSignature, ValueError):
        return None, problems + ["signature: does not verify under this public key (statement or signature "
                                 "changed, or another warehouse's key)"], kid
    try:
        stmt = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, problems + ["statement: the signed payload is not JSON"], kid
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        problems.append(f"statement: _type is not {STATEMENT_TYPE}")
    elif stmt.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"statement: predicateType is not {PREDICATE_TYPE}")
    return (stmt if isinstance(stmt, dict) else None), problems, kid


def verify_bundle(folder: Path, public_pem: bytes) -> Verification:
    """Check a downloaded export folder offline (see the module's docstring)."""
    folder = Path(folder)
    out = Verification()
    if not folder.is_dir():
        out.problems.append(f"{folder}: not a folder")
        return out
    prov = folder / FILE_NAME
    if not prov.is_file():
        out.problems.append(f"{FILE_NAME}: missing from {folder}")
        return out
    stmt, problems, out.keyid = verify_envelope(prov.read_bytes(), public_pem)
    out.problems += problems
    out.statement = stmt
    if stmt is None:
        return out
    subjects = stmt.get("subject")
    if not isinstance(subjects, list) or not all(
            isinstance(x, dict) and isinstance(x.get("name"), str) and isinstance(x.get("digest"), dict)
            for x in subjects):
        out.problems.append("statement: subject is not a list of {name, digest}")
        return out
    claimed = {x["name"]: x["digest"].get("sha256") for x in subjects}
    if len(claimed) != len(subjects):
        out.problems.append("statement: a subject is named twice")
    present = {}
    for p in sorted(folder.iterdir()):
        if p.name == FILE_NAME:
            continue
        if not p.is_file() or p.is_symlink():
            out.problems.append(f"{p.name}: not a regular file (the bundle holds files only)")
            continue
        present[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    out.files = sorted(present)
    for name in sorted(set(claimed) - set(present)):
        out.problems.append(f"{name}: in the statement but not in the folder")
    for name in sorted(set(present) - set(claimed)):
        out.problems.append(f"{name}: in the folder but not in the statement")
    for name in sorted(set(claimed) & set(present)):
        if claimed[name] != present[name]:
            out.problems.append(f"{name}: SHA-256 {present[name]} is not the statement's {claimed[name]}")
    bundle = hashlib.sha256("".join(f"{n}:{d}\n" for n, d in sorted(claimed.items())).encode()).hexdigest()
    approved = ((stmt.get("predicate") or {}).get("export") or {}).get("bundle_sha256")
    if approved != bundle:
        out.problems.append("statement: its subjects are not the bundle the stewards approved (bundle hash differs)")
    return out
