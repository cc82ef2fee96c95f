"""Keys shared by the machines of one warehouse (sandbox.catalog.keys.share_keys)."""

from __future__ import annotations

import threading

import pytest

from sandbox.catalog.keys import load_or_create_key, load_or_create_signing_key, share_keys
from sandbox.errors import Conflict

CREATORS = {"audit.key": load_or_create_key, "provenance_ed25519.pem": load_or_create_signing_key}


def _share(secrets_dir, store: dict[str, bytes]) -> None:
    share_keys(secrets_dir, CREATORS, store.get, store.__setitem__, threading.Lock())


def test_the_first_machine_creates_the_keys_and_the_others_use_them(tmp_path) -> None:
    store: dict[str, bytes] = {}
    _share(tmp_path / "a" / "secrets", store)
    assert set(store) == set(CREATORS)
    _share(tmp_path / "b" / "secrets", store)
    for name in CREATORS:
        assert (tmp_path / "b" / "secrets" / name).read_bytes() == store[name] == \
            (tmp_path / "a" / "secrets" / name).read_bytes()
        assert (tmp_path / "b" / "secrets" / name).stat().st_mode & 0o777 == 0o600
    # the readers' own calls now find the shared key, never make one of their own
    assert load_or_create_key(tmp_path / "b" / "secrets" / "audit.key") == bytes.fromhex(store["audit.key"].decode())


def test_a_machine_with_a_key_of_its_own_is_refused_not_silently_switched(tmp_path) -> None:
    store: dict[str, bytes] = {}
    _share(tmp_path / "a" / "secrets", store)
    own = tmp_path / "b" / "secrets"
    load_or_create_key(own / "audit.key")  # this machine sealed records with another key before
    before = (own / "audit.key").read_bytes()
    with pytest.raises(Conflict) as err:
        _share(own, store)
    assert err.value.details["key"] == "audit.key"
    assert (own / "audit.key").read_bytes() == before  # nothing overwritten


def test_a_warehouse_that_begins_sharing_keeps_its_keys(tmp_path) -> None:
    own = tmp_path / "a" / "secrets"
    key = load_or_create_key(own / "audit.key")
    store: dict[str, bytes] = {}
    _share(own, store)
    assert bytes.fromhex(store["audit.key"].decode()) == key
