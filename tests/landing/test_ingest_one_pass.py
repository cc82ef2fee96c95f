"""A CSV append or overwrite reads its file once: parts staged while it is parsed and hashed, then
committed under the load id that hash gives (sandbox.landing.ingest._load_in_one_pass)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import register, table_rows, write_csv

import connectors.base
import connectors.csv
from sandbox.context import get_dataset
from sandbox.errors import InvalidInput, ValidationFailed
from sandbox.landing.ingest import Ingest
from sandbox.landing.plan import load_id_for
from sandbox.tables import staged, storage
from sandbox.tables.uris import to_path


def table_dir(wh: Any, name: str) -> Path:
    with wh.db.read() as s:
        return to_path(get_dataset(s, name).table_path)


def staged_folders(wh: Any, name: str) -> list[str]:
    return sorted(p.name for p in table_dir(wh, name).iterdir() if p.name.startswith(staged.STAGE_PREFIX))


def big_csv(path: Path, rows: int) -> Path:
    return write_csv(path, [(f"c{i:07d}", "2024-01-01", i % 997) for i in range(rows)])


def test_a_csv_is_read_once_and_its_load_named_by_the_bytes_parsed(wh, people, tmp_path: Path, monkeypatch) -> None:
    name = register(wh, people)
    f = big_csv(tmp_path / "in.csv", 150_000)  # ~3.4 MB: over the 1 MiB header read
    read = [0]
    real_open = connectors.base.open_regular

    class Counting(io.RawIOBase):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            data = self._inner.read(size)
            read[0] += len(data)
            return data

        def readinto(self, buffer: Any) -> int:
            data = self.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

        def seek(self, *args: Any) -> int:
            return self._inner.seek(*args)

        def fileno(self) -> int:
            return self._inner.fileno()

        def close(self) -> None:
            self._inner.close()
            super().close()

    def counting_open(path: Any) -> tuple[Path, Any]:
        p, fh = real_open(path)
        return p, Counting(fh)

    monkeypatch.setattr(connectors.csv, "open_regular", counting_open)
    monkeypatch.setattr(connectors.base, "open_regular", counting_open)
    out = wh.ingest.ingest(people["bank_steward"], name, f)
    size = f.stat().st_size
    # once, plus the header's first MiB; a first hashing pass would have read it all twice
    assert read[0] <= size + (1 << 20) + 16, (read[0], size)
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    assert out["status"] == "committed" and out["rows"] == 150_000
    assert out["load_id"] == load_id_for(name, sha, "append")
    history = wh.dataset_history(people["bank_steward"], name)["versions"]
    assert history[-1]["source_sha256"] == sha
    entry = storage.history(table_dir(wh, name))[-1]
    assert entry["metadata"]["twh.source_sha256"] == sha and entry["rows_added"] == 150_000
    assert not (table_dir(wh, name) / staged_folders(wh, name)[0] / "_delta_log").exists()


def test_the_same_file_again_is_already_loaded_and_leaves_no_parts(wh, people, tmp_path: Path) -> None:
    name = register(wh, people)
    f = write_csv(tmp_path / "in.csv", [("001", "2024-01-01", 1.5), ("002", "2024-01-02", 2.5)])
    first = wh.ingest.ingest(people["bank_steward"], name, f)
    folders = staged_folders(wh, name)
    again = wh.ingest.ingest(people["bank_steward"], name, f)
    assert again["status"] == "already_loaded" and again["version"] == first["version"]
    assert staged_folders(wh, name) == folders  # the second read's parts were discarded
    assert len(table_rows(wh, name)) == 2


def test_a_file_rewritten_during_the_load_is_refused_and_nothing_lands(wh, people, tmp_path: Path,
                                                                       monkeypatch) -> None:
    name = register(wh, people)
    f = write_csv(tmp_path / "in.csv", [("001", "2024-01-01", 1.5), ("002", "2024-01-02", 2.5)])
    real = Ingest._checked

    def rewrite_after_first_batch(self, batches, *args):  # noqa: ANN001, ANN002
        for i, b in enumerate(real(self, batches, *args)):
            if i == 0:  # same size, other bytes: only the file's times tell
                f.write_text(f.read_text().replace("1.5", "9.5"))
            yield b

    monkeypatch.setattr(Ingest, "_checked", rewrite_after_first_batch)
    with pytest.raises((ValidationFailed, InvalidInput), match="changed while"):
        wh.ingest.ingest(people["bank_steward"], name, f)
    assert staged_folders(wh, name) == [] and wh.datasets.show(people["bank_steward"], name)["versions"] == []


def test_a_utf8_bom_is_still_stripped_in_one_pass(wh, people, tmp_path: Path) -> None:
    name = register(wh, people)
    f = tmp_path / "bom.csv"
    f.write_bytes(b"\xef\xbb\xbfcode,day,price\n001,2024-01-01,1.5\n")
    assert wh.ingest.ingest(people["bank_steward"], name, f)["rows"] == 1
    assert table_rows(wh, name)[0]["code"] == "001"


def test_a_nul_byte_after_a_good_header_is_refused_by_line(wh, people, tmp_path: Path) -> None:
    name = register(wh, people)
    f = tmp_path / "nul.csv"
    f.write_bytes(b"code,day,price\n001,2024-01-01,1.5\n002,2024-01-02,2\x005\n")
    with pytest.raises((ValidationFailed, InvalidInput), match="NUL byte at line 3"):
        wh.ingest.ingest(people["bank_steward"], name, f)
    assert staged_folders(wh, name) == [] and wh.datasets.show(people["bank_steward"], name)["versions"] == []
