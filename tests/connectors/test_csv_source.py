"""CSV landing (THREATS.md §7): every hostile file is refused clearly, every good one read exactly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pytest

from connectors import ColumnSpec, ConfigError, CsvSource, SchemaError, SourceError, get_source, schema_report

SPECS = [ColumnSpec("code", "string", nullable=False), ColumnSpec("name", "string"), ColumnSpec("n", "int64")]


def write(tmp_path: Path, data: bytes | str, name: str = "in.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def read(path: Path, specs=SPECS, **options) -> pa.Table:
    with CsvSource().open(path, specs, options) as stream:
        batches = list(stream)
    return pa.Table.from_batches(batches, schema=stream.schema)


def refused(path: Path, specs=SPECS, **options) -> SourceError:
    with pytest.raises(SourceError) as info:
        read(path, specs, **options)
    return info.value


def test_reads_declared_types_in_declared_order_whatever_the_header_order(tmp_path: Path) -> None:
    p = write(tmp_path, "n,name,code\n1,甲,007\n2,,0100\n")
    t = read(p)
    assert t.schema.names == ["code", "name", "n"]
    assert t.to_pydict() == {"code": ["007", "0100"], "name": ["甲", None], "n": [1, 2]}


def test_utf8_bom_is_stripped(tmp_path: Path) -> None:
    p = write(tmp_path, b"\xef\xbb\xbfcode,name,n\n1,a,2\n")
    assert read(p).column("code").to_pylist() == ["1"]


def test_quoted_newlines_are_values_and_row_numbers_count_records_not_lines(tmp_path: Path) -> None:
    p = write(tmp_path, 'code,name,n\n1,"line one\nline two",1\n2,"a ""quote""",2\n3,c,x\n')
    err = refused(p)
    assert isinstance(err, SchemaError)
    assert err.violations[0].rows == (3,)  # third data row, although it is on line 5
    p2 = write(tmp_path, 'code,name,n\n1,"line one\r\nline two",1\n2,"a ""quote""",2\n', "ok.csv")
    assert read(p2).column("name").to_pylist() == ["line one\r\nline two", 'a "quote"']


def test_gbk_is_read_when_declared_and_refused_with_a_hint_when_not(tmp_path: Path) -> None:
    text = "code,name,n\n001,重庆两江新区企业,1\n"
    p = write(tmp_path, text.encode("gbk"))
    assert read(p, encoding="gbk").column("name").to_pylist() == ["重庆两江新区企业"]
    assert read(p, encoding="GB18030").column("name").to_pylist() == ["重庆两江新区企业"]
    err = refused(p)
    assert err.check == "encoding" and "encoding: gbk" in err.message and "line 2" in err.message


@pytest.mark.parametrize("bad", [b"2,x\xffy,2\n", b'2,"xy"\xff,2\n', b"2\xff,xy,2\n"])
def test_invalid_utf8_past_the_first_mib_is_refused_with_its_line(tmp_path: Path, bad: bytes) -> None:
    # the first pass only hashes a UTF-8 file; the parser finds the bytes, the slow path the line
    body = b"".join(b"%d,abc,%d\n" % (i, i) for i in range(100_000))
    assert len(body) > 1 << 20
    err = refused(write(tmp_path, b"code,name,n\n" + body + bad + b"3,c,3\n"))
    assert err.check == "encoding" and "not valid utf-8 at line 100002" in err.message


def test_utf8_bom_in_a_file_declared_gbk_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, b"\xef\xbb\xbfcode,name,n\n1,a,2\n")
    assert "probably UTF-8" in refused(p, encoding="gbk").message


def test_nul_bytes_are_refused_with_their_line(tmp_path: Path) -> None:
    p = write(tmp_path, b"code,name,n\n1,a,1\n2,b\x00c,2\n")
    err = refused(p)
    assert err.check == "nul_byte" and "line 3" in err.message


@pytest.mark.parametrize("body,row", [("1,a,1\n2,b\n", 2), ("1,a,1\n2,b,3,4\n", 2), ('1,"x\ny",1\n2,b\n', 2)])
def test_ragged_rows_are_refused_with_their_row(tmp_path: Path, body: str, row: int) -> None:
    err = refused(write(tmp_path, "code,name,n\n" + body))
    assert err.check == "ragged" and err.row == row and f"data row {row}" in err.message


def test_a_field_over_the_limit_is_refused_with_its_row(tmp_path: Path) -> None:
    p = write(tmp_path, "code,name,n\n1,a,1\n2," + "z" * 300 + ",2\n")
    err = refused(p, max_field_bytes=200, block_size=4096)
    assert err.check == "field_size" and err.row == 2


def test_a_10_mb_field_is_refused_without_reading_it_into_a_message(tmp_path: Path) -> None:
    p = write(tmp_path, b"code,name,n\n1,a,1\n2," + b"Q" * (10 * 1024 * 1024) + b",2\n")
    err = refused(p)
    assert err.check == "field_size" and err.row == 2
    assert "QQQQ" not in err.message and len(err.message) < 300


@pytest.mark.parametrize("header,expected", [
    ("code,name,n,n", "duplicate column name(s) ['n']"),
    ("code,name,n,", "empty column name(s) at position(s) [4]"),
    ("code,name", "missing declared column(s) ['n']"),
    ("code,name,n,extra", "undeclared column(s) ['extra']"),
    ("code,name, n", "(has surrounding spaces)"),
    ("CODE,name,n", "missing declared column(s) ['code']"),
])
def test_header_problems_are_named(tmp_path: Path, header: str, expected: str) -> None:
    err = refused(write(tmp_path, header + "\n1,2,3\n"))
    assert err.check == "header" and expected in err.message


def test_empty_file_and_header_only_file(tmp_path: Path) -> None:
    assert refused(write(tmp_path, "")).check == "header"
    assert read(write(tmp_path, "code,name,n\n", "h1.csv")).num_rows == 0
    assert read(write(tmp_path, "code,name,n", "h2.csv")).num_rows == 0


def test_values_that_do_not_convert_are_all_reported_for_the_batch(tmp_path: Path) -> None:
    p = write(tmp_path, "code,name,n\n1,a,1\n,b,1,234\n".replace("1,234", '"1,234"') + "3,c,NaN\n4,d, 12\n")
    err = refused(p)
    assert isinstance(err, SchemaError)
    checks = {(v.column, v.check) for v in err.violations}
    assert checks == {("code", "not_null"), ("n", "type")}
    n_violation = next(v for v in err.violations if v.column == "n")
    assert n_violation.count == 3 and n_violation.rows == (2, 3, 4)
    report = schema_report(err)
    assert not report.success and report.kind == "schema" and len(report.results) == 2
    assert "1,234" not in report.to_text() and "1,234" in report.to_text(include_examples=True)


def test_row_numbers_continue_across_batches(tmp_path: Path) -> None:
    rows = "".join(f"{i},name{i},{i}\n" for i in range(1, 2001))
    p = write(tmp_path, "code,name,n\n" + rows + "2001,x,oops\n")
    with pytest.raises(SchemaError) as info:
        read(p, block_size=4096, max_field_bytes=1024)
    assert info.value.violations[0].rows == (2001,)
    p_ok = write(tmp_path, "code,name,n\n" + rows, "ok.csv")
    with CsvSource().open(p_ok, SPECS, {"block_size": 4096, "max_field_bytes": 1024}) as stream:
        sizes = [b.num_rows for b in stream]
    assert len(sizes) > 3 and sum(sizes) == 2000


def test_formula_cells_are_kept_as_text(tmp_path: Path) -> None:
    p = write(tmp_path, 'code,name,n\n1,=HYPERLINK("http://x"),1\n2,+1-1,2\n3,@SUM(A1),3\n4,-2,4\n')
    assert read(p).column("name").to_pylist() == ['=HYPERLINK("http://x")', "+1-1", "@SUM(A1)", "-2"]


def test_dialect_options(tmp_path: Path) -> None:
    p = write(tmp_path, "code;name;n\n1;'a;b';2\n")
    assert read(p, delimiter=";", quotechar="'").column("name").to_pylist() == ["a;b"]


def test_describe_gives_lineage_with_the_file_sha256(tmp_path: Path) -> None:
    p = write(tmp_path, "code,name,n\n1,a,1\n2,b,2\n")
    with get_source("csv").open(p, SPECS) as stream:
        before = stream.describe()
        assert before["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
        list(stream)
        after = stream.describe()
    assert before["complete"] is False and after["complete"] is True
    assert after["connector"] == "csv" and after["rows"] == 2 and after["size_bytes"] == p.stat().st_size
    assert after["file_name"] == "in.csv" and str(tmp_path) not in str(after)


def test_a_file_changed_while_being_read_fails_the_stream(tmp_path: Path) -> None:
    p = write(tmp_path, "code,name,n\n1,a,1\n")
    stream = CsvSource().open(p, SPECS)
    p.write_text("code,name,n\n9,z,9\n")  # same size, different bytes, after the first pass
    with pytest.raises(SourceError, match="changed while"):
        list(stream)


def test_non_regular_files_are_refused(tmp_path: Path) -> None:
    assert refused(tmp_path).check == "file"
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert "not a regular file" in refused(fifo).message
    assert "does not exist" in refused(tmp_path / "missing.csv").message


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    p = write(tmp_path, "code,name,n\n")
    with pytest.raises(ConfigError, match="unknown option"):
        read(p, encodng="gbk")
    with pytest.raises(ConfigError, match="not supported"):
        read(p, encoding="latin-1")
    with pytest.raises(ConfigError):
        read(p, delimiter=",,")
    with pytest.raises(ConfigError):
        read(p, max_field_bytes=0)


def test_messages_never_carry_raw_values(tmp_path: Path) -> None:
    secret = "身份证510103199001011234"
    cases = [
        "code,name,n\n1,a,1\n2," + secret + "\n",  # ragged
        "code,name,n\n1,a," + secret + "\n",  # type
    ]
    for i, text in enumerate(cases):
        err = refused(write(tmp_path, text, f"s{i}.csv"))
        assert secret not in err.message and "510103" not in err.message
        assert secret not in schema_report(err).to_text()


def test_the_background_hash_is_of_the_bytes_handed_out_even_when_the_file_changes_midway(tmp_path: Path) -> None:
    """Pass 2 hashes in a thread of its own, behind the reads: it must still hash exactly the bytes
    the parser got, so a file rewritten after part of it was read no longer matches pass 1."""
    import threading

    from connectors.base import HashingReader

    p = tmp_path / "big.bin"
    p.write_bytes(os.urandom(3 << 20))
    original = hashlib.sha256(p.read_bytes()).hexdigest()
    with open(p, "rb") as f:
        reader = HashingReader(f, background=True)
        got = reader.read(1 << 20)
        with open(p, "r+b") as w:  # rewrite the part not read yet
            w.seek(2 << 20)
            w.write(b"\0" * (1 << 20))
        got += reader.read(-1)
        digest = reader.drain()
    assert digest == hashlib.sha256(got).hexdigest() != original
    assert not [t for t in threading.enumerate() if t.name == "twh-source-hash"]  # drain stopped it


def test_closing_an_unfinished_stream_stops_its_hasher(tmp_path: Path) -> None:
    import threading

    body = "".join(f"{i},n{i},{i}\n" for i in range(200_000))
    p = write(tmp_path, "code,name,n\n" + body)
    stream = CsvSource().open(p, SPECS, {"block_size": 2 << 20})
    next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "twh-source-hash"]


def test_a_read_after_the_hash_is_final_is_refused_not_left_unhashed(tmp_path: Path) -> None:
    """A parser thread still reading while another thread closes the stream must not restart the
    hasher (a leaked thread) nor get bytes the final hash never saw."""
    from connectors.base import HashingReader

    p = tmp_path / "f.bin"
    p.write_bytes(b"x" * 10)
    with open(p, "rb") as f:
        reader = HashingReader(f, background=True)
        assert reader.read(4) == b"xxxx"
        reader._stop_hasher()  # what close() and drain() do first
        with pytest.raises(ValueError, match="after drain"):
            reader.read(4)
        assert reader._hasher is None and reader.hash.hexdigest() == hashlib.sha256(b"xxxx").hexdigest()
