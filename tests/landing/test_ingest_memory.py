"""Ingest streams: peak memory does not grow with the file.

Each side runs in its own subprocess (its peak RSS is its own) and lands a 20 MB and then a
200 MB generated registry CSV (bench/govdata.py: Chinese text, codes, dates, amounts), reporting
its peak RSS (``VmHWM``) after each; the peak is a high-water mark, so the second figure minus the first is
what ten times more data added. The Delta writer (delta-rs) itself needs more memory until its
first Parquet file and row group fill (about 150 MB of this CSV), so the yardstick is a plain
``write_deltalake`` of the same files: everything of ours (connector, strict conversion,
contract, read-ahead) may add less than 150 MB on top of the writer's own growth. Holding the
data would add about 300 MB (the extra rows as Arrow arrays); measured here, what we add ranged
from -2 to +103 MB over runs (allocator and thread timing), so the bound is not tighter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_CHILD = textwrap.dedent("""
    import json, shutil, sys
    from pathlib import Path
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
    from govdata import MANIFEST, write_registry_csv

    mode, tmp = sys.argv[2], Path(sys.argv[3])
    if mode == "ingest":
        from sandbox.datasets.manifest import parse_manifest
        from sandbox.settings import Settings
        from sandbox.warehouse import Warehouse

        wh = Warehouse.open(Settings(home=tmp / "wh"))
        wh.users.bootstrap_admin()
        wh.users.add(wh.users.principal("admin"), "steward", "steward", "bank_a")
        steward = wh.users.principal("steward")
    else:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        from deltalake import write_deltalake
        from sandbox.landing.loads import TARGET_FILE_SIZE

        kinds = {"string": pa.string(), "date": pa.date32(), "float64": pa.float64(), "int64": pa.int64()}
        types = {c["name"]: kinds[c["type"]] for c in MANIFEST["schema"]}
    out = {}
    for size in ("20M", "200M"):
        name = "registry_" + size.lower()
        csv = tmp / (name + ".csv")
        rows = write_registry_csv(csv, size, chunk_rows=50_000)
        if mode == "ingest":
            wh.datasets.register(steward, parse_manifest({**MANIFEST, "name": name}))
            result = wh.ingest.ingest(steward, name, csv)
            assert result["status"] == "committed" and result["rows"] == rows, (result, rows)
        else:
            reader = pa_csv.open_csv(csv, convert_options=pa_csv.ConvertOptions(column_types=types))
            write_deltalake(tmp / name, reader, target_file_size=TARGET_FILE_SIZE)
            shutil.rmtree(tmp / name)
        csv.unlink()
        # VmHWM, not ru_maxrss: Linux carries the forking parent's high-water mark (here the
        # whole pytest process) into the child's ru_maxrss across exec; VmHWM is this process's own
        hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
        out[size] = {"rows": rows, "peak_rss_mb": int(hwm.split()[1]) / 1024}
    print(json.dumps(out))
""")


def _peaks(mode: str, tmp: Path) -> dict:
    # a file, not ``python -c``: pyspark (imported by Great Expectations when installed) takes a
    # main module without __file__ for a doctest run and exits 0 on import
    child = tmp / "child.py"
    child.write_text(_CHILD)
    (tmp / mode).mkdir()
    done = subprocess.run([sys.executable, str(child), str(ROOT), mode, str(tmp / mode)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_is_flat_in_file_size(tmp_path: Path) -> None:
    def measure(tmp: Path) -> tuple[dict, dict, float]:
        tmp.mkdir()
        ours, plain = _peaks("ingest", tmp), _peaks("plain", tmp)
        grew = {k: v["200M"]["peak_rss_mb"] - v["20M"]["peak_rss_mb"] for k, v in (("ours", ours), ("plain", plain))}
        return ours, plain, grew["ours"] - grew["plain"]

    # 180 MB more CSV (about 1.2 million more rows): what we add on top of the writer stays flat.
    # Both peaks are pipelines of bounded buffers (reader, hasher, prefetch, writer) whose peak
    # depends on which are full at once, so on a busy machine one pair can differ by ~150 MB
    # (measured in CI beside the PostgreSQL pass); holding the rows adds ~300 MB in every run,
    # so a second measurement is taken only when the first is over, and the smaller one decides.
    ours, plain, extra = measure(tmp_path / "first")
    if extra >= 150:
        ours, plain, extra = min((ours, plain, extra), measure(tmp_path / "second"), key=lambda m: m[2])
    assert ours["200M"]["rows"] > 9 * ours["20M"]["rows"]
    assert extra < 150, (ours, plain)
    assert ours["200M"]["peak_rss_mb"] < 1500, ours
