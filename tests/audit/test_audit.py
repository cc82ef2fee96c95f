"""The audit log: tampering of every kind is found at its record; concurrent appends never fork."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, select, update

from sandbox.audit.log import Actor, AuditLog, record_hash
from sandbox.catalog.db import AuditHead, AuditRecord
from sandbox.errors import AuditWriteFailed, Conflict, Forbidden

A = Actor("alice", "t1")


def _append(wh, n: int, action: str = "test.action") -> None:
    for i in range(n):
        with wh.db.transaction() as s:
            wh.audit.append(s, A, action, "thing", f"id{i}", {"i": i})


def test_clean_chain_verifies(wh):
    _append(wh, 5)
    r = wh.audit.verify()
    assert r.ok and r.records == 5 and r.first_bad_seq is None


def test_modified_record_is_named(wh):
    _append(wh, 6)
    with wh.db.transaction() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(details={"i": 99}))
    r = wh.audit.verify()
    assert not r.ok and r.first_bad_seq == 3 and "modified" in r.problem


def test_deleted_record_is_named(wh):
    _append(wh, 6)
    with wh.db.transaction() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq == 4))
    r = wh.audit.verify()
    assert not r.ok and r.first_bad_seq == 4 and "missing" in r.problem


def test_reordered_records_are_found(wh):
    _append(wh, 6)
    with wh.db.transaction() as s:  # swap the contents of records 2 and 3, keeping their seq
        r2 = s.get(AuditRecord, 2)
        r3 = s.get(AuditRecord, 3)
        cols = ("ts", "actor", "tenant", "action", "object_type", "object_id", "details", "prev_hash", "hash", "seal")
        a = {c: getattr(r2, c) for c in cols}
        b = {c: getattr(r3, c) for c in cols}
        r2.hash = "x" * 64  # the hash column is unique: park one value while swapping
        s.flush()
        for c in cols:
            setattr(r3, c, a[c])
        s.flush()
        for c in cols:
            setattr(r2, c, b[c])
    r = wh.audit.verify()
    assert not r.ok and r.first_bad_seq == 2


def test_truncated_tail_is_found_even_if_head_is_rewritten(wh):
    _append(wh, 6)
    with wh.db.transaction() as s:
        last = s.get(AuditRecord, 4)
        s.execute(delete(AuditRecord).where(AuditRecord.seq > 4))
        s.execute(update(AuditHead).values(seq=4, hash=last.hash))
    r = wh.audit.verify()
    assert not r.ok and "truncated" in r.problem


def test_whole_rewrite_without_the_key_is_found(wh, tmp_path):
    """An attacker with the database but not the key rebuilds a consistent chain: the seals expose it."""
    _append(wh, 4)
    with wh.db.transaction() as s:
        prev = "0" * 64
        for rec in s.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars():
            rec.actor = "mallory"
            rec.prev_hash = prev
            rec.hash = record_hash({k: getattr(rec, k) for k in (
                "seq", "ts", "actor", "tenant", "action", "object_type", "object_id", "details", "prev_hash")})
            prev = rec.hash
        s.execute(update(AuditHead).values(hash=prev))
    (wh.settings.home / "audit" / "anchors.log").write_text("")  # and wipe the anchors
    r = wh.audit.verify()
    assert not r.ok and r.first_bad_seq == 1 and "seal" in r.problem


def test_concurrent_appends_never_fork(wh):
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(10):
                with wh.db.transaction() as s:
                    wh.audit.append(s, Actor(f"w{k}", "t"), "race", "thing", f"{k}-{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    r = wh.audit.verify()
    assert r.ok and r.records == 80


def test_action_rolls_back_when_audit_write_fails(wh, people, monkeypatch):
    """If the record cannot be written, the action it records does not happen."""
    def broken(*a, **k):
        raise AuditWriteFailed("disk full")

    monkeypatch.setattr(wh.audit, "append", broken)
    with pytest.raises(AuditWriteFailed):
        wh.users.add(people["admin"], "ghost", "enterprise", "t9")
    monkeypatch.undo()
    from sandbox.errors import NotFound
    with pytest.raises(NotFound):
        wh.users.principal("ghost")


def test_failed_action_writes_no_record(wh, people):
    before = wh.audit.verify().records
    with pytest.raises(Conflict):
        wh.users.add(people["admin"], "analyst", "enterprise", "bank_a")
    assert wh.audit.verify().records == before


def test_only_auditors_and_admins_read_the_log(wh, people):
    with pytest.raises(Forbidden):
        wh.audit_verify(people["analyst"])
    with pytest.raises(Forbidden):
        wh.audit_records(people["tax_steward"])
    assert wh.audit_verify(people["auditor"]).ok


def test_the_key_lives_outside_the_database(wh):
    key = wh.settings.secrets_dir / "audit.key"
    assert key.exists() and (key.stat().st_mode & 0o077) == 0
    # A second AuditLog on the same warehouse uses the same key and verifies the same chain.
    _append(wh, 2)
    again = AuditLog(wh.db, wh.settings.secrets_dir, wh.settings.home / "audit" / "anchors.log")
    assert again.verify().ok
