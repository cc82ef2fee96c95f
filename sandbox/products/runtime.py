"""The platform's inference runtime: features for authorised subjects, then the catalog model.

    engine = FeatureEngine(ctx, library)
    columns, versions = engine.compute(model.features, subjects)      # Arrow columns, in subjects' order
    x_num, x_cat = encode(columns, model.cfg)                         # the declared, data-independent encoding
    scores, reasons = Runtime(ctx).score(model, x_num, x_cat)

**Features** are the library definitions composed by :func:`sandbox.training.library.compose` over
the datasets' current versions, pinned (snapshots cached per version: they never change), on the
gate's locked-down DuckDB connection, with the subjects as the base table (:meth:`FeatureEngine.compute`,
a batch). Small requests — a decision, a verification — read a **materialised** copy instead
(:meth:`FeatureEngine.lookup`): each definition's engine SQL run once per pinned version over every
unit, held in this process (at most :data:`MAX_CACHED_UNITS` units, :data:`CACHE_ENTRIES`
definitions), so a single subject costs a dictionary lookup, not a scan. Same SQL, same version,
same values (tested). Only authorised subjects ever reach this module, so what a request costs
depends on them alone — and a lookup costs the same whether the subject is in the data or not.

**Where the model runs, and why.** A catalog model holds no user code: a declarative model is the
platform's builder (``dp.training.models``) with checked weights, so its forward pass runs here in
NumPy (:func:`dp.training.forward.forward`, tested equal to the torch module), in the trusted
service — a sandbox per call would cost its start (≈ 40 ms) plus importing NumPy there, most of
the single-subject budget (p95 ≤ 50 ms), and a batch gains nothing from it. A **custom graph**
(exported from user code, checked, interpreted by ``dp.training.graph`` with torch) runs in the
trainer's sandbox (no network, no broker, every layer of the job sandbox), one launch per request,
inputs and logits as safetensors: the interpreter is the platform's, but torch's operators on a
user-shaped graph are more surface than a matmul. That costs ≈ 1–3 s (torch's import) per call.

**Encoding** is :func:`dp.training.features.encode`'s, vectorised over Arrow (tested equal);
**reason codes** (a model's declared ``reason_codes``) are by occlusion: each input set to its
"missing" encoding, the inputs whose removal lowers the logit most are named (names only).
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..catalog.db import Dataset
from ..context import Context
from ..errors import QueryRefused, TrainingRefused
from ..gate.engine import open_connection
from ..tables import storage
from ..tables.snapshot import Snapshot
from ..training.features import UNIT, FeaturePlan
from ..training.library import SUBJECTS, NamedFeature, check_definition, compose
from .features import FeatureLibrary
from .models import LoadedModel

__all__ = ["FeatureEngine", "Runtime", "encode", "scores_of"]

#: a definition with more units than this is not materialised (small requests scan, like batches)
MAX_CACHED_UNITS = 5_000_000
CACHE_ENTRIES = 64
#: requests of at most this many subjects read the materialised features
SMALL = 100
_INFER_ENTRY = "from dp.training.entry import infer_main\nraise SystemExit(infer_main('/job', '/out'))\n"


class FeatureEngine:
    def __init__(self, ctx: Context, library: FeatureLibrary) -> None:
        self.ctx = ctx
        self._library = library
        self._snapshots: dict[tuple[str, str, int], Snapshot] = {}
        self._plans: dict[tuple[str, ...], FeaturePlan] = {}
        self._lock = threading.Lock()
        #: (ref, versions) -> (unit -> row, values): one definition over every unit of a pinned version
        self._cache: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[dict[str, int], Any] | None] = {}
        self._filling: dict[tuple[str, tuple[tuple[str, int], ...]], threading.Lock] = {}

    def plan(self, named: Sequence[NamedFeature]) -> FeaturePlan:
        key = tuple(nf.ref for nf in named)
        if key not in self._plans:  # definitions never change: plan once per set (sqlglot costs ms)
            self._plans[key] = compose(named, self._library.lookup, subjects=True)
        return self._plans[key]

    def snapshots(self, datasets: Sequence[str]) -> dict[str, Snapshot]:
        """The current version of each dataset, pinned (cached: a version's files never change)."""
        with self.ctx.db.read() as s:
            rows = s.execute(Dataset.__table__.select().where(Dataset.name.in_(list(datasets)))).mappings().all()
        out: dict[str, Snapshot] = {}
        for r in rows:
            key = (r["name"], r["table_path"], r["current_version"])
            with self._lock:
                snap = self._snapshots.get(key)
            if snap is None:
                snap = storage.pin_snapshot(self.ctx.table(r["table_path"]), r["name"], r["current_version"])
                with self._lock:
                    self._snapshots[key] = snap
            out[r["name"]] = snap
        return out

    def _materialised(self, nf: NamedFeature, snaps: dict[str, Snapshot]) -> tuple[dict[str, int], Any] | None:
        """Every unit's value of ``nf`` at the pinned versions (computed once; None: too many units)."""
        import duckdb

        key = (nf.ref, tuple(sorted((n, snaps[n].version) for n in nf.datasets)))
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            fill = self._filling.setdefault(key, threading.Lock())
        with fill:  # one computation per key, however many requests wait for it
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            single = self._plans.get(("__one__", nf.ref))
            if single is None:  # the definition's own plan: every unit, one row each
                single = self._plans[("__one__", nf.ref)] = check_definition(nf.name, nf.sql, self._library.lookup)
            con = open_connection(single, {n: snaps[n] for n in single.tables})
            try:
                table = con.sql(single.engine_sql).to_arrow_table()
            except duckdb.Error:
                raise QueryRefused("the feature failed when computed on the data", details={"rule": "engine"}) from None
            finally:
                con.close()
            entry = None
            if table.num_rows <= MAX_CACHED_UNITS:
                units = table.column(UNIT).to_pylist()
                entry = ({str(u): i for i, u in enumerate(units) if u is not None}, table.column(nf.name).combine_chunks())
            with self._lock:
                if len(self._cache) >= CACHE_ENTRIES:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = entry
                self._filling.pop(key, None)
            return entry

    def lookup(self, named: Sequence[NamedFeature], subjects: Sequence[str]) -> tuple[dict[str, Any], dict[str, int]]:
        """:meth:`compute`'s answer for a few subjects, from the materialised definitions."""
        import pyarrow as pa

        datasets = sorted({d for nf in named for d in nf.datasets})
        snaps = self.snapshots(datasets)
        out: dict[str, Any] = {}
        for nf in named:
            entry = self._materialised(nf, snaps)
            if entry is None:
                return self.compute(named, subjects)
            index, values = entry
            out[nf.name] = values.take(pa.array([index.get(s) for s in subjects], type=pa.int64()))
        return out, {n: snaps[n].version for n in datasets}

    def compute(self, named: Sequence[NamedFeature], subjects: Sequence[str]) -> tuple[dict[str, Any], dict[str, int]]:
        """Each feature's values for ``subjects`` (Arrow arrays, in their order) and the versions read."""
        import duckdb
        import pyarrow as pa
        import pyarrow.compute as pc

        plan = self.plan(named)
        snaps = self.snapshots(plan.tables)
        base = subjects if isinstance(subjects, pa.Array) else pa.array(list(subjects), type=pa.string())
        con = open_connection(plan, snaps)
        try:
            con.register(SUBJECTS, pa.table({UNIT: base}))
            table = con.sql(plan.engine_sql).to_arrow_table()
        except duckdb.Error:  # DuckDB's messages can quote values: only the kind leaves
            raise QueryRefused("the features failed when computed on the data (types of the definitions)",
                               details={"rule": "engine"}) from None
        finally:
            con.close()
        order = pc.index_in(base, value_set=table.column(UNIT).cast(pa.string()))
        aligned = table.take(order)
        return {c: aligned.column(c) for c in plan.output_columns}, {n: s.version for n, s in snaps.items()}


def encode(columns: Mapping[str, Any], cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    """``dp.training.features.encode`` (numeric: clip, log1p, scale to [0, 1], missing → 0;
    categorical: index in the declared list + 1, anything else → 0), on Arrow columns at once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(next(iter(columns.values()))) if columns else 0
    nums = []
    for f in cfg.numeric:
        col = columns[f.name]
        col = pa.chunked_array([col]) if isinstance(col, pa.Array) else col if isinstance(col, pa.ChunkedArray) \
            else pa.chunked_array([pa.array(list(col), type=pa.float64(), from_pandas=True)])
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)
                or pa.types.is_boolean(col.type) or pa.types.is_null(col.type)):
            col = pc.cast(col, pa.string()).to_pylist()  # text numbers: as float() reads them, one by one
            v = np.array([_float(x) for x in col], dtype=np.float64)
        else:
            v = pc.cast(col, pa.float64()).to_numpy().astype(np.float64) if n else np.zeros(0)
        lo, hi = f.lo, f.hi
        v = np.clip(np.nan_to_num(v, nan=lo, posinf=hi, neginf=lo), lo, hi)
        if f.log:
            v, lo, hi = np.log1p(v), np.log1p(lo), np.log1p(hi)
        nums.append((v - lo) / (hi - lo))
    cats = []
    for f in cfg.categorical:
        col = columns[f.name]
        col = col if isinstance(col, pa.Array | pa.ChunkedArray) else pa.array([None if x is None else str(x) for x in col])
        text = pc.cast(col, pa.string())
        idx = pc.index_in(text, value_set=pa.array(list(f.categories), type=pa.string()))
        cats.append(pc.fill_null(pc.add(idx, 1), 0).to_numpy().astype(np.int64) if n else np.zeros(0, np.int64))
    x_num = np.stack(nums, axis=1).astype(np.float32) if nums else np.zeros((n, 0), np.float32)
    x_cat = np.stack(cats, axis=1) if cats else np.zeros((n, 0), np.int64)
    return x_num, x_cat


def _float(x: Any) -> float:
    try:
        return float(x) if x is not None else np.nan
    except (TypeError, ValueError):
        return np.nan


def scores_of(cfg: Any, logits: np.ndarray, digits: int) -> np.ndarray:
    """What leaves: a probability (bce) or the value (mse), rounded to the model's digits."""
    values = 1.0 / (1.0 + np.exp(-logits.astype(np.float64))) if cfg.loss == "bce" else logits.astype(np.float64)
    return np.round(values, digits)


class Runtime:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def logits(self, model: LoadedModel, x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
        if model.graph is None:
            from dp.training.forward import forward

            return forward(model.cfg, model.weights, x_num, x_cat)
        return self._sandboxed(model, x_num, x_cat)

    def score(self, model: LoadedModel, x_num: np.ndarray, x_cat: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        """Scores, and per row the model's declared number of reason codes (by occlusion)."""
        n, k = len(x_num), model.reason_codes
        names = [f.name for f in model.cfg.numeric] + [f.name for f in model.cfg.categorical]
        if not k or not n:
            return scores_of(model.cfg, self.logits(model, x_num, x_cat), model.score_digits), []
        # one call over the rows and, per input, the rows with that input "missing"
        nums, cats = [x_num], [x_cat]
        for j in range(x_num.shape[1]):
            xn = x_num.copy()
            xn[:, j] = 0.0
            nums.append(xn)
            cats.append(x_cat)
        for j in range(x_cat.shape[1]):
            xc = x_cat.copy()
            xc[:, j] = 0
            nums.append(x_num)
            cats.append(xc)
        out = self.logits(model, np.concatenate(nums), np.concatenate(cats)).reshape(len(nums), n)
        base, drops = out[0], out[0][None, :] - out[1:]  # how much each input raised the logit
        order = np.argsort(-drops, axis=0, kind="stable")[:k]
        reasons = [[names[order[r, i]] for r in range(min(k, len(names))) if drops[order[r, i], i] > 0]
                   for i in range(n)]
        return scores_of(model.cfg, base, model.score_digits), reasons

    def _sandboxed(self, model: LoadedModel, x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
        """A custom graph in the trainer's sandbox (no broker, no network): encoded inputs in, logits out."""
        from dp.training.weights import read_safetensors, write_safetensors

        from ..training.service import copy_dp, run_sandboxed, sandbox_limits

        st = self.ctx.settings
        run = st.home / "inference" / ("run_" + secrets.token_hex(6))
        folder = run / "job"
        folder.mkdir(parents=True)
        try:
            copy_dp(folder)
            (folder / "twh_infer.py").write_text(_INFER_ENTRY)
            (folder / "graph.json").write_text(json.dumps(model.graph))
            (folder / "model.safetensors").write_bytes(write_safetensors(model.weights))
            (folder / "inputs.safetensors").write_bytes(write_safetensors({"x_num": x_num.astype(np.float32),
                                                                           "x_cat": x_cat.astype(np.int64)}))
            result = run_sandboxed(folder, "twh_infer.py", run / "scratch", sandbox_limits(st, (".safetensors", ".json")),
                                   st.train_threads)
        finally:
            shutil.rmtree(run, ignore_errors=True)
        files = {o.name: o.data for o in result.outputs}
        if result.outcome.value != "succeeded" or "scores.safetensors" not in files:
            reason = json.loads(files["error.json"]).get("reason", "") if "error.json" in files else result.reason
            raise TrainingRefused(f"the model did not run ({str(reason)[:200]})", details={"rule": "inference"})
        logits = read_safetensors(files["scores.safetensors"]).get("logits")
        if logits is None or logits.shape != (len(x_num),) or not np.isfinite(logits).all():
            raise TrainingRefused("the model's output is malformed", details={"rule": "inference"})
        return logits
