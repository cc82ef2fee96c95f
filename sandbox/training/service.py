"""The training job kind: features by the broker, DP-SGD by the platform, weights out only certified.

For a job whose ``job.yaml`` has a ``train:`` block, after the job's own code has run:

1. **features** — the broker plans the feature query (:mod:`sandbox.training.features`: declared
   columns only, joins on join keys, never identifiers) and runs it on the job's pinned
   snapshots: one row per privacy unit, written to a Parquet file only the trainer sees;
2. **split** — each row goes to training or held-out at random (CSPRNG), independently of data;
3. **plan** — σ from the target (ε, δ), the Poisson rate and the step count, before training
   (:func:`dp.training.accounting.plan_privacy`); δ must be ≤ 1/(10·N);
4. **reserve** — (ε, δ) is charged to every dataset read, in the ledger, **before** the first
   step (kind ``training``); no refund whatever happens next;
5. **custom model** (``model.kind: custom``) — the user's ``nn.Module`` runs only in a sandbox
   like the job's, on mock inputs, to export a graph (JSON) + initial weights (safetensors);
   trusted code checks both (:func:`dp.training.graph.check_graph`);
6. **train** — :func:`dp.training.entry.train_main` in its **own** sandbox (no network, no
   broker; its folder holds the trainer code, the config and the two Parquet files);
7. **release** — the weights are re-serialised by trusted code against the expected
   names/shapes/dtypes; ε is **re-certified here** (PRV + RDP cross-check) from σ, q and the
   planned steps; the model card (JSON + PNG) is written here from DP numbers only (held-out
   metrics and loss curve, no exact counts, no training loss) and joins the job's export, which
   the stewards of every dataset read approve. The membership-attack report, exact counts,
   training losses and timings go to ``training_review.json`` in the job's folder: stewards and
   auditors read it with the job's logs; it is never in the export.

A trainer that is killed, times out or refuses leaves the reserved ε spent and releases nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dp
from dp.budget import Budget
from dp.training import TrainConfig, TrainingError

from ..auth import SYSTEM, Principal
from ..context import Context
from ..errors import TrainingRefused
from ..gate import TableInfo
from ..isolation.runner import SandboxLimits, SandboxOutcome, SandboxResult, run_in_sandbox
from ..release.outputs import GatedFile, gate_weights
from ..settings import Settings
from ..tables.snapshot import Snapshot
from .features import FeaturePlan, plan_features, run_features
from .library import NamedFeature, compose

if TYPE_CHECKING:  # the job spec is handed in by the jobs wing, which sits above this one
    from ..jobs.spec import JobSpec

log = logging.getLogger(__name__)

_DP_PACKAGE = Path(dp.__file__).resolve().parent  # copied into the trainer's sandbox
_TRAIN_ENTRY = "from dp.training.entry import train_main\nraise SystemExit(train_main('/job', '/out'))\n"
_EXPORT_ENTRY = "from dp.training.entry import export_main\nraise SystemExit(export_main('/job', '/out'))\n"
MAX_REPORT_BYTES = 2 * 1024 * 1024
#: the trainer's DP metrics that go on the model card (and so in the export)
RELEASED_METRICS = ("holdout", "holdout_loss_curve", "n_holdout_noisy")
#: exact statistics of the rows, timings: stewards only (``REVIEW_FILE`` in the job's folder,
#: shown with the job's logs), never exported
STEWARD_ONLY = ("epoch_losses_train", "samples", "seconds", "samples_per_second", "peak_rss_mb", "n_train",
                "n_holdout", "path")
REVIEW_FILE = "training_review.json"
#: a custom model's checked graph, kept in the job's folder for the model catalog
GRAPH_FILE = "model_graph.json"


def _no_broker(_request: dict[str, Any]) -> dict[str, Any]:
    return {"ok": False, "error": {"code": "forbidden", "message": "the trainer has no broker"}}


def _copy_dp(dest: Path) -> None:
    # copyfile, not copy2: the copy takes the warehouse's private modes (umask 077), not the checkout's
    shutil.copytree(_DP_PACKAGE, dest / "dp", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    copy_function=shutil.copyfile)
    for root, dirs, _files in os.walk(dest / "dp"):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
    os.chmod(dest / "dp", 0o700)


#: the dp package into a sandbox folder (the trainer, the custom-model export, catalog inference)
copy_dp = _copy_dp


def model_export_folder(code_dir: Path, folder: Path, mock: Mapping[str, Any]) -> None:
    """The custom-model export's folder: the job's code, the dp package, the entry, mock shapes.
    The user's model module runs there (imported by the entry) in :func:`run_sandboxed`."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(code_dir, folder)
    _copy_dp(folder)
    (folder / "twh_export.py").write_text(_EXPORT_ENTRY)
    (folder / "twh_mock.json").write_text(json.dumps(dict(mock)))


def sandbox_limits(settings: Settings, outputs: tuple[str, ...]) -> SandboxLimits:
    """The trainer's and the custom-model export's limits: torch needs more room than a job."""
    return SandboxLimits(wall_seconds=settings.train_wall_seconds,
                         cpu_seconds=int(settings.train_wall_seconds * settings.train_threads),
                         memory_bytes=settings.train_memory_mb * 1024 * 1024, max_file_bytes=256 * 1024 * 1024,
                         max_output_bytes=256 * 1024 * 1024, max_output_files=8, allowed_output_suffixes=outputs)


def run_sandboxed(folder: Path, entry: str, scratch: Path, limits: SandboxLimits, threads: int) -> SandboxResult:
    """The one launch of the trainer and of the custom-model export: the job sandbox's every layer
    (no network, no host files, fresh keyring, seccomp allow-list, neutral paths, teardown of every
    process), no broker, and an environment for torch's threads. ``scratch`` is emptied first."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = {"OMP_NUM_THREADS": str(threads), "MPLCONFIGDIR": "/tmp", "TMPDIR": "/tmp"}
    try:
        return run_in_sandbox(folder, scratch, _no_broker, limits, entrypoint=entry, env=env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _json_file(outputs: Mapping[str, bytes], name: str) -> dict[str, Any]:
    data = outputs.get(name)
    if data is None or len(data) > MAX_REPORT_BYTES:
        raise TrainingRefused(f"the trainer did not write {name}")
    try:
        obj = json.loads(data)
    except ValueError:
        raise TrainingRefused(f"the trainer's {name} does not parse") from None
    if not isinstance(obj, dict):
        raise TrainingRefused(f"the trainer's {name} is malformed")
    return obj


#: ``name@version`` -> the library's definition (``sandbox.products.features``, handed in by the facade)
FeatureResolver = Callable[[str], NamedFeature]


def feature_plan(spec: JobSpec, manifests: Callable[[str], Any],
                 features: FeatureResolver | None = None) -> tuple[TrainConfig, FeaturePlan]:
    """The ``train:`` block's config and its feature query's plan, every selected column accounted
    for: a feature declared under ``numeric:``/``categorical:``, or the label. Library features
    (``features: [name@version, ...]``) are resolved with ``features`` and composed by
    :func:`.library.compose`. Static (no row is read, nothing is charged), so the jobs wing runs it
    at submit and :meth:`Training.run` again before it reserves ε."""
    assert spec.train is not None
    cfg = spec.train.to_config()
    datasets = list(spec.datasets)

    def lookup(name: str) -> TableInfo:
        if name not in datasets:
            raise TrainingRefused(f"dataset {name!r} is not among this job's datasets")
        m = manifests(name)
        return TableInfo(name=name, policy=m.build_policy(), columns=tuple(c.name for c in m.columns))

    if spec.train.feature_refs:
        if features is None:
            raise TrainingRefused("features by name need the feature library, which this runner lacks",
                                  details={"rule": "feature_library"})
        named = [features(ref) for ref in spec.train.feature_refs]
        cats = {f.name for f in cfg.categorical}
        nums = {f.name for f in cfg.numeric}
        for nf in named:
            if (nf.kind == "numeric" and nf.name in cats) or (nf.kind == "categorical" and nf.name in nums):
                raise TrainingRefused(f"{nf.ref} is a {nf.kind} feature: declare it under {nf.kind}:",
                                      details={"rule": "feature_kind", "feature": nf.ref})
        fplan = compose(named, lookup, extra_sql=spec.train.sql, base=cfg.label)
    else:
        fplan = plan_features(spec.train.features, lookup)
    missing = [c for c in (*cfg.feature_columns, cfg.label) if c not in fplan.output_columns]
    if missing:
        raise TrainingRefused(f"the feature query does not return {', '.join(missing)}",
                              details={"rule": "missing_feature", "columns": missing})
    # A selected column that is neither declared nor the label would be dropped silently, and the
    # model trained — and ε charged — on less than the job asked for.
    undeclared = [c for c in fplan.output_columns if c not in (*cfg.feature_columns, cfg.label)]
    if undeclared:
        raise TrainingRefused(
            f"the feature query selects {', '.join(undeclared)}, not declared in train: — declare each under "
            "numeric: (with its range) or categorical: (with its categories), or remove it from the query; "
            "nothing was charged", details={"rule": "undeclared_feature", "columns": undeclared})
    return cfg, fplan


class Training:
    def __init__(self, ctx: Context, queries: Any, manifests: Callable[[str], Any], job_dir: Callable[[str], Path],
                 features: FeatureResolver | None = None):
        self.ctx = ctx
        self.queries = queries
        self._manifests = manifests
        self._job_dir = job_dir
        self._features = features

    # -- steps --------------------------------------------------------------------------------
    def _limits(self, outputs: tuple[str, ...]) -> SandboxLimits:
        return sandbox_limits(self.ctx.settings, outputs)

    def _sandbox(self, folder: Path, entry: str, job_id: str, what: str) -> dict[str, bytes]:
        result = run_sandboxed(folder, entry, self._job_dir(job_id) / f"{what}-run",
                               self._limits((".json", ".safetensors")), self.ctx.settings.train_threads)
        (self._job_dir(job_id) / f"{what}.stderr.log").write_bytes(result.stderr)
        self.ctx.record(SYSTEM, f"training.{what}_ran", "job", job_id,
                        {"outcome": result.outcome.value, "reason": result.reason, "wall_seconds": result.wall_seconds,
                         "outputs": [[o.name, o.sha256, o.size] for o in result.outputs]})
        if result.outcome is not SandboxOutcome.SUCCEEDED:
            raise TrainingRefused(f"the {what} sandbox did not finish ({result.outcome.value}); the reserved "
                                  "epsilon stays spent and nothing is released")
        files = {o.name: o.data for o in result.outputs}
        if "error.json" in files:
            err = _json_file(files, "error.json")
            raise TrainingRefused(str(err.get("reason", "refused"))[:500], details={"rule": str(err.get("code"))[:40]})
        return files

    def _custom_graph(self, job_id: str, cfg: TrainConfig) -> tuple[dict[str, Any], bytes]:
        """Run the user's model code in a sandbox on mock inputs; check what comes back."""
        from dp.training.graph import check_graph
        from dp.training.weights import check_weights, read_safetensors

        folder = self._job_dir(job_id) / "model-export"
        model_export_folder(self._job_dir(job_id) / "code", folder, {
            "module": cfg.model.module, "builder": cfg.model.builder, "n_numeric": len(cfg.numeric),
            "cardinalities": [f.cardinality for f in cfg.categorical]})
        try:
            files = self._sandbox(folder, "twh_export.py", job_id, "model_export")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if "graph.json" not in files or "init.safetensors" not in files:
            raise TrainingRefused("the model export wrote no graph")
        try:
            graph = json.loads(files["graph.json"])
            checked = check_graph(graph)
            check_weights(read_safetensors(files["init.safetensors"]),
                          {k: (s, d) for k, (s, d) in checked.shapes.items()})
        except TrainingError as exc:
            raise TrainingRefused(exc.message, details={"rule": exc.code}) from None
        except ValueError:
            raise TrainingRefused("the exported graph is not JSON") from None
        return graph, files["init.safetensors"]

    # -- the whole run ------------------------------------------------------------------------
    def run(self, principal: Principal, job_id: str, spec: JobSpec, snapshots: Mapping[str, Snapshot]) -> list[GatedFile]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from dp.training.accounting import certify, plan_privacy
        from dp.training.card import card_json, card_png, model_card
        from dp.training.features import encode

        cfg, fplan = feature_plan(spec, self._manifests, self._features)  # again: a manifest may have changed since submit
        # Everything up to here read no row: the plan, and a custom model's export on mock inputs.
        graph: dict[str, Any] | None = None
        init = b""
        if cfg.model.kind == "custom":
            graph, init = self._custom_graph(job_id, cfg)
        # The ledger BEFORE the first data-dependent step (the feature query, "too few rows", the
        # privacy plan's sample rate): a job failing on one of them has still seen the data, so it
        # has paid for it; no refund from here on.
        charge = Budget.of(repr(cfg.target_epsilon), repr(cfg.target_delta))
        self.queries.budgets.reserve(principal, list(fplan.tables), charge, job_id=job_id, kind="training")
        feats = run_features(fplan, snapshots)
        n = feats.table.num_rows
        rng = np.random.default_rng(int.from_bytes(os.urandom(16), "little"))
        hold_mask = rng.random(n) < cfg.holdout
        idx_train = pa.array(np.flatnonzero(~hold_mask), type=pa.int64())
        idx_hold = pa.array(np.flatnonzero(hold_mask), type=pa.int64())
        train_t, hold_t = feats.table.take(idx_train), feats.table.take(idx_hold)
        enc_train = encode(train_t.to_pydict(), cfg)
        if len(enc_train) < 50 or hold_t.num_rows < 20:
            raise TrainingRefused(f"too few rows to train ({len(enc_train)} training, {hold_t.num_rows} held out); "
                                  "the reserved epsilon stays spent")
        try:
            plan = plan_privacy(len(enc_train), cfg.batch_size, cfg.epochs, cfg.target_epsilon, cfg.target_delta,
                                cfg.max_grad_norm)
        except TrainingError as exc:
            raise TrainingRefused(exc.message, details={"rule": exc.code}) from None
        self.ctx.record(SYSTEM, "training.planned", "job", job_id,
                        {"plan": plan.to_dict(), "feature_sql": fplan.sql, "versions": feats.versions,
                         "units": feats.units, "dropped_duplicate_rows": feats.dropped_duplicate_rows,
                         "n_holdout": hold_t.num_rows})
        folder = self._job_dir(job_id) / "trainer"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if graph is not None:
            (folder / "graph.json").write_text(json.dumps(graph))
            # kept beside the job (trusted side, bound by the card's graph_sha256): a catalog model
            # published from this export interprets exactly this graph
            from dp.training.graph import graph_bytes

            (self._job_dir(job_id) / GRAPH_FILE).write_bytes(graph_bytes(graph))
            (folder / "init.safetensors").write_bytes(init)
        _copy_dp(folder)
        (folder / "twh_train.py").write_text(_TRAIN_ENTRY)
        (folder / "train_config.json").write_text(json.dumps({"train": cfg.to_dict(), "plan": plan.to_dict(),
                                                               "threads": self.ctx.settings.train_threads}))
        pq.write_table(train_t, folder / "train.parquet")
        pq.write_table(hold_t, folder / "holdout.parquet")
        try:
            files = self._sandbox(folder, "twh_train.py", job_id, "trainer")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        report = _json_file(files, "report.json")
        if report.get("steps") != plan.steps:
            raise TrainingRefused("the trainer did not take the planned number of steps; nothing is released")
        try:
            cert = certify(plan.noise_multiplier, plan.sample_rate, plan.steps, plan.target_delta)
        except TrainingError as exc:
            raise TrainingRefused(exc.message, details={"rule": exc.code}) from None
        if cert.epsilon > cfg.target_epsilon + 1e-9:
            raise TrainingRefused("the certified epsilon exceeds the reserved one; nothing is released")
        expected = _expected_weights(cfg, graph)
        meta = {"job_id": job_id, "epsilon": f"{cert.epsilon:.6g}", "delta": f"{cert.delta:.3g}",
                "format": "twh-dp-weights/1"}
        if "model.safetensors" not in files:
            raise TrainingRefused("the trainer wrote no weights")
        try:
            weights = gate_weights("model.safetensors", files["model.safetensors"], expected, meta)
        except TrainingError as exc:
            raise TrainingRefused(exc.message, details={"rule": exc.code}) from None
        from dp.training.graph import graph_sha256

        released = report.get("released") if isinstance(report.get("released"), dict) else {}
        steward_only = report.get("steward_only") if isinstance(report.get("steward_only"), dict) else {}
        card = model_card(
            job={"id": job_id, "name": spec.name, "purpose": spec.purpose, "tenant": principal.tenant},
            config=cfg.to_dict(), certificate=cert.to_dict(), plan=plan.to_dict(),
            # no exact row counts: the held-out count on the card is the DP one (released)
            data={"datasets": list(fplan.tables), "versions": feats.versions, "feature_sql": fplan.sql,
                  **({"features": list(spec.train.feature_refs)} if spec.train.feature_refs else {})},
            hashes={"weights_sha256": weights.sha256, "graph_sha256": graph_sha256(graph) if graph else None,
                    "job_code_sha256": _code_sha(self._job_dir(job_id) / "code")},
            released={k: released.get(k) for k in RELEASED_METRICS},
            weights={k: {"shape": list(s), "dtype": d} for k, (s, d) in expected.items()})
        attack = steward_only.get("attack") if isinstance(steward_only.get("attack"), dict) else {}
        review = {"job_id": job_id, "certified_epsilon": cert.epsilon, "membership_inference": attack,
                  "training": {k: steward_only.get(k) for k in STEWARD_ONLY},
                  "data": {"privacy_unit_rows": feats.units,
                           "dropped_duplicate_unit_rows": feats.dropped_duplicate_rows,
                           "training_rows": plan.n_train, "held_out_rows": hold_t.num_rows}}
        (self._job_dir(job_id) / REVIEW_FILE).write_bytes(card_json(review))
        self.ctx.record(SYSTEM, "training.certified", "job", job_id,
                        {"epsilon": cert.epsilon, "epsilon_rdp": cert.epsilon_rdp, "delta": cert.delta,
                         "noise_multiplier": cert.noise_multiplier, "steps": cert.steps,
                         "weights_sha256": weights.sha256, "attack_auc": attack.get("auc"),
                         "attack_flagged": attack.get("flagged")})
        # The export carries only what is DP or public: the weights and the card (JSON + PNG).
        return [weights, GatedFile("model_card.json", card_json(card)), GatedFile("model_card.png", card_png(card))]


def _code_sha(code_dir: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted(code_dir.iterdir()) if code_dir.is_dir() else []:
        if p.is_file():
            h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _expected_weights(cfg: TrainConfig, graph: dict[str, Any] | None) -> dict[str, tuple[tuple[int, ...], str]]:
    if graph is not None:
        from dp.training.graph import check_graph

        return {k: (s, "float32") for k, (s, _) in check_graph(graph).shapes.items()}
    from dp.training.models import build_model

    model = build_model(cfg)
    return {n: (tuple(p.shape), "float32") for n, p in model.named_parameters()}
