"""Plots for people who would rather look than read: audit activity, gate decisions, budget burn-down.

Rendered server-side with matplotlib's object API (no pyplot: pages render on worker threads) to
SVG; pages embed them as ``data:`` images (the CSP allows no inline style, and an SVG shown as an
image runs nothing). Notebooks call the ``*_figure`` functions and get a Figure to display.

Every ``*_figure`` takes ``lang`` (``en``, ``zh-CN``): titles, axes and legends come from the
interface's catalogue (:mod:`sandbox.i18n`), numbers are formatted for that language, and
Chinese is drawn with WenQuanYi Micro Hei (``make sysdeps`` installs ``fonts-wqy-microhei``),
added as a *fallback* after DejaVu Sans: Latin text looks as before, CJK glyphs come from the
fallback. SVG text is written as paths, so the browser needs no font.

The inputs are plain records (audit records, job queries, budget charges), never data values.
"""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import matplotlib
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure  # the object API: no pyplot, no backend switch, thread-safe per figure

from ...i18n import fmt_number, translations

#: the CJK fonts tried after DejaVu Sans, in order (the first installed one draws Chinese)
CJK_FONTS = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC"]


def _cjk_fallback() -> None:
    """Draw text in the first installed sans-serif font, falling back glyph by glyph to the installed
    CJK fonts (matplotlib >= 3.6 falls back across the *named* families of ``font.family``, not
    within a generic one): English text is unchanged, Chinese text finds its glyphs. Idempotent."""
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    first = next((f for f in matplotlib.rcParams["font.sans-serif"] if f in have), "DejaVu Sans")
    matplotlib.rcParams["font.family"] = [first, *(f for f in CJK_FONTS if f in have and f != first), "sans-serif"]


_cjk_fallback()

PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#64748b"]
BUCKETS = {"minute": "%Y-%m-%d %H:%M", "hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d"}


def _ts(value: Any) -> datetime:
    return datetime.fromisoformat(str(value)[:26].rstrip("Z")).replace(tzinfo=None)


def pick_bucket(times: list[datetime]) -> str:
    """Minutes for a short span, hours up to a week, days beyond."""
    if not times:
        return "hour"
    span = max(times) - min(times)
    return "minute" if span <= timedelta(hours=3) else "hour" if span <= timedelta(days=7) else "day"


def _label(t: datetime, bucket: str) -> str:
    return t.strftime(BUCKETS[bucket])


def _tr(lang: str) -> Any:
    """``gettext`` of ``lang``: plots are drawn for one viewer, in their language."""
    return translations(lang).gettext


def _bucket_word(bucket: str, lang: str) -> str:
    _ = _tr(lang)
    return {"minute": _("minute"), "hour": _("hour"), "day": _("day")}.get(bucket, bucket)


def _kind_word(kind: str, lang: str) -> str:
    """An audit action's kind (``query`` of ``query.released``) as people say it."""
    _ = _tr(lang)
    return {"query": _("queries"), "job": _("jobs"), "export": _("exports"), "token": _("tokens"),
            "dataset": _("datasets"), "ingest": _("ingest"), "user": _("users"), "audit": _("audit"),
            "budget": _("budget"), "synthetic": _("synthetic data"), "warehouse": _("warehouse"),
            "syft": _("PySyft bridge")}.get(kind, kind)


def _axes(title: str, width: float = 9.0, height: float = 3.0) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold", color="#0f172a")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.spines["left"].set_color("#cbd5e1")
    ax.spines["bottom"].set_color("#cbd5e1")
    ax.tick_params(colors="#475569", labelsize=8)
    ax.grid(axis="y", color="#e2e8f0", linewidth=0.8)
    ax.set_axisbelow(True)
    return fig, ax


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#64748b", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.figure.set_size_inches(9, 1.6)


def _stacked(ax: Any, labels: list[str], series: Mapping[str, list[float]], colors: Mapping[str, str],
             lang: str = "en") -> None:
    x = list(range(len(labels)))
    bottom = [0.0] * len(labels)
    for name, values in series.items():
        ax.bar(x, values, bottom=bottom, label=_kind_word(name, lang), color=colors[name], width=0.7)
        bottom = [b + v for b, v in zip(bottom, values)]
    _xticks(ax, labels, lang)


def _xticks(ax: Any, labels: list[str], lang: str = "en") -> None:
    """Bucket labels without the repeated date when every bucket falls on one day."""
    x = list(range(len(labels)))
    days = {lab[:10] for lab in labels}
    shown = [lab[11:] if len(days) == 1 and len(lab) > 10 else lab for lab in labels]
    step = max(1, len(labels) // 12)
    ax.set_xticks(x[::step], [shown[i] for i in x[::step]], rotation=0 if len(labels) <= 8 else 30,
                  ha="center" if len(labels) <= 8 else "right")
    ax.set_xlim(-0.75, max(len(labels) - 0.25, 2.25))
    if len(days) == 1:
        _ = _tr(lang)
        ax.set_xlabel(_("{day} (UTC)").format(day=next(iter(days))), fontsize=8, color="#475569")


def _legend(fig: Figure, ax: Any, ncol: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    for other in fig.axes[1:]:
        h, lab = other.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False, ncol=1 if ncol < 12 else 2)


def activity_figure(records: Iterable[Mapping[str, Any]], bucket: str | None = None, *, lang: str = "en") -> Figure:
    """Audit records per time bucket, stacked by kind (the part of the action before the dot)."""
    _ = _tr(lang)
    recs = [(_ts(r["ts"]), str(r["action"]).split(".")[0]) for r in records]
    bucket = bucket or pick_bucket([t for t, _k in recs])
    fig, ax = _axes(_("Audit activity per {bucket}").format(bucket=_bucket_word(bucket, lang)))
    if not recs:
        _empty(ax, _("no records in this range"))
        return fig
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for t, kind in recs:
        counts[kind][_label(t, bucket)] += 1
    labels = sorted({_label(t, bucket) for t, _k in recs})
    kinds = sorted(counts, key=lambda k: -sum(counts[k].values()))
    colors = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}
    _stacked(ax, labels, {k: [counts[k][lab] for lab in labels] for k in kinds}, colors, lang)
    ax.set_ylabel(_("records"), fontsize=8, color="#475569")
    _integer_ticks(ax, lang)
    _legend(fig, ax, len(kinds))
    return fig


def _integer_ticks(ax: Any, lang: str) -> None:
    """Counts on the y axis: whole numbers with the language's separators (1,000 not 1000.0)."""
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_number(int(round(v)), lang)))


def gate_points_from_audit(records: Iterable[Mapping[str, Any]]) -> list[tuple[Any, str, int]]:
    """``(time, outcome, suppressed groups)`` of every ``query.*`` record."""
    out = []
    for r in records:
        if str(r.get("action", "")).startswith("query."):
            d = r.get("details") or {}
            out.append((r["ts"], str(d.get("outcome") or r["action"].split(".")[1]), int(d.get("suppressed_groups") or 0)))
    return out


def gate_figure(points: Iterable[tuple[Any, str, int]], bucket: str | None = None, *, lang: str = "en") -> Figure:
    """Queries released vs refused per time bucket, and the groups the gate suppressed in them."""
    _ = _tr(lang)
    pts = [(_ts(t), outcome, suppressed) for t, outcome, suppressed in points]
    bucket = bucket or pick_bucket([t for t, _o, _s in pts])
    fig, ax = _axes(_("Gate decisions per {bucket}").format(bucket=_bucket_word(bucket, lang)))
    if not pts:
        _empty(ax, _("no queries yet"))
        return fig
    labels = sorted({_label(t, bucket) for t, _o, _s in pts})
    released: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    suppressed_groups: Counter[str] = Counter()
    for t, outcome, suppressed in pts:
        lab = _label(t, bucket)
        (released if outcome == "released" else refused)[lab] += 1
        suppressed_groups[lab] += suppressed
    x = list(range(len(labels)))
    up = [released[lab] for lab in labels]
    ax.bar(x, up, width=0.6, color="#16a34a", label=_("released queries"))
    ax.bar(x, [refused[lab] for lab in labels], width=0.6, bottom=up, color="#dc2626", label=_("refused queries"))
    ax.set_ylabel(_("queries"), fontsize=8, color="#475569")
    _integer_ticks(ax, lang)
    twin = ax.twinx()
    twin.plot(x, [suppressed_groups[lab] for lab in labels], color="#f59e0b", marker="o", linewidth=2,
              label=_("suppressed groups"))
    twin.set_ylim(bottom=0)
    twin.set_ylabel(_("groups suppressed"), fontsize=8, color="#b45309")
    twin.tick_params(colors="#b45309", labelsize=8)
    for side in ("top", "left", "bottom"):
        twin.spines[side].set_visible(False)
    _xticks(ax, labels, lang)
    _legend(fig, ax, 3)
    return fig


def budget_series(info: Mapping[str, Any] | None) -> tuple[float, list[tuple[datetime, float]]] | None:
    """``(total ε, [(time, ε charged)])`` from a budget ledger, or None when the dataset has no DP budget.

    Reads the ledger's shape (``{"budget": {"epsilon": "1"} | None, "history": [{"at", "epsilon"}]}``,
    see :meth:`sandbox.broker.budget.Budgets.show`); ε may be exact text such as ``"1/10"``.
    """
    if not info or info.get("budget") is None:
        return None
    try:
        total = _eps(info["budget"]["epsilon"])
        spent = [(_ts(e["at"]), _eps(e["epsilon"])) for e in info.get("history") or [] if e.get("at")]
    except (TypeError, ValueError, KeyError, ZeroDivisionError):
        return None
    return total, sorted(spent)


def _eps(value: Any) -> float:
    return float(Fraction(str(value)))


def budget_period(info: Mapping[str, Any] | None) -> str:
    """The budget's period (``none``, ``month``, ``year``) from a ledger (:func:`budget_series`'s input)."""
    period = ((info or {}).get("budget") or {}).get("period")
    return period if period in ("none", "month", "year") else "none"


def period_window(period: str, spent: list[tuple[datetime, float]], now: datetime) -> tuple[datetime, datetime]:
    """The time the burn-down shows: the current calendar month or year (UTC) for a budget that
    restarts, else from the first charge to now, padded so that charges seconds apart still
    spread over the axis (never matplotlib's default of years around a single instant)."""
    if period == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return start, (start + timedelta(days=32)).replace(day=1)
    if period == "year":
        start = now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        return start, start.replace(year=start.year + 1)
    first = min((t for t, _e in spent), default=now)
    span = max(now - first, timedelta(minutes=10))
    return first - span * 0.05, now + span * 0.05


def budget_figure(total: float, spent: list[tuple[datetime, float]], dataset: str = "", *, period: str = "none",
                  now: datetime | None = None, lang: str = "en") -> Figure:
    """ε remaining against the dataset's total budget, over the budget's period (this month or year
    for a budget that restarts; charges of earlier periods do not count against it)."""
    _ = _tr(lang)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    start, end = period_window(period, spent, now)
    if period in ("month", "year"):
        spent = [(t, e) for t, e in spent if start <= t < end]
    title = _("Privacy budget burn-down") + (f" — {dataset}" if dataset else "")
    if period in ("month", "year"):
        title += f" ({start:%Y-%m})" if period == "month" else f" ({start:%Y})"
    fig, ax = _axes(title, height=3.0)
    total_text = fmt_number(total, lang)
    if not spent:
        ax.hlines(total, start, min(now, end), color="#16a34a", linewidth=2,
                  label=_("remaining ε = {total} (nothing spent)").format(total=total_text))
    else:
        times, left, acc = [start], [total], 0.0
        for t, eps in spent:
            acc += eps
            times.append(t)
            left.append(total - acc)
        times.append(min(now, end) if now >= times[-1] else times[-1])  # flat from the last charge to now
        left.append(left[-1])
        ax.step(times, left, where="post", color="#2563eb", linewidth=2,
                label=_("ε remaining: {left} of {total}").format(left=fmt_number(round(left[-1], 4), lang),
                                                                total=total_text))
        ax.fill_between(times, left, step="post", color="#2563eb", alpha=0.12)
        ax.axhline(0, color="#dc2626", linewidth=1, linestyle="--")
    if start <= now <= end:
        ax.axvline(now, color="#94a3b8", linewidth=1, linestyle=":", label=_("now"))
    ax.set_xlim(start, end)
    ax.set_ylim(bottom=min(0, total), top=total * 1.1 if total > 0 else 1)
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    # numbers only (no month names): the same axis reads right in every language
    ax.xaxis.set_major_formatter(ConciseDateFormatter(
        locator, formats=["%Y", "%m-%d", "%m-%d", "%H:%M", "%H:%M", ":%S"],
        zero_formats=["", "%Y-%m", "%m-%d", "%m-%d", "%H:%M", "%H:%M"],
        offset_formats=["", "", "", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]))  # the title names month/year
    ax.set_xlabel("UTC", fontsize=8, color="#475569")
    ax.set_ylabel("ε", fontsize=9, color="#475569")
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    return fig


def to_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue()


def data_uri(fig: Figure) -> str:
    """The figure as an SVG ``data:`` URI for an ``<img>``."""
    return "data:image/svg+xml;base64," + base64.b64encode(to_svg(fig).encode()).decode()


def model_card_figure(card: Mapping[str, Any], attack: Mapping[str, Any] | None = None, *,
                      lang: str = "en") -> Figure:
    """A model card's curves: the DP held-out loss per epoch, the DP held-out calibration and — for a
    viewer allowed the training review only (``attack`` not None) — the membership-attack ROC.

    Reads the card's shape (:func:`dp.training.card.model_card`) and the review's
    ``membership_inference`` (:mod:`sandbox.training.service`); a missing part is an empty panel.
    """
    _ = _tr(lang)
    panels = 2 if attack is None else 3
    width = 4 * panels
    fig = Figure(figsize=(width, 3.6), dpi=100, layout="constrained")
    axes = list(fig.subplots(1, panels))
    loss_ax, cal_ax = axes[0], axes[1]
    for ax in axes:
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(colors="#475569", labelsize=8)
        ax.grid(color="#e2e8f0", linewidth=0.8)
        ax.set_axisbelow(True)

    def title(ax: Any, text: str) -> None:
        ax.set_title(text, loc="left", fontsize=10, fontweight="bold", color="#0f172a")

    curve = card.get("holdout_loss_curve_dp") or {}
    points = [(int(e), float(v)) for e, v in zip(curve.get("epochs") or [], curve.get("loss") or [])
              if _finite(e) and _finite(v)]
    title(loss_ax, _("Held-out loss (DP, ε={eps})").format(eps=_g(curve.get("epsilon"))))
    if points:
        loss_ax.plot([e for e, _ in points], [v for _, v in points], marker="o", color="#2563eb", linewidth=2)
        loss_ax.set_xlabel(_("epoch"), fontsize=8, color="#475569")
        loss_ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        _empty(loss_ax, _("no held-out loss curve"))

    h = card.get("holdout_metrics_dp") or {}
    pos, neg = list(h.get("noisy_positives") or []), list(h.get("noisy_negatives") or [])
    title(cal_ax, _("Held-out calibration (DP, ε={eps})").format(eps=_g(h.get("epsilon"))))
    if pos and len(pos) == len(neg):
        # noisy counts: a bin whose count came out <= 0 has no observed rate to show
        bins = [((i + 0.5) / len(pos), max(float(a), 0), max(float(a), 0) + max(float(b), 0))
                for i, (a, b) in enumerate(zip(pos, neg))]
        bins = [(x, p, n) for x, p, n in bins if n > 0]
        cal_ax.plot([0, 1], [0, 1], ls="--", color="#94a3b8", linewidth=1)
        cal_ax.scatter([x for x, _, _ in bins], [p / n for _, p, n in bins], s=[8 + 2 * n for _, _, n in bins],
                       color="#16a34a", alpha=0.8)
        cal_ax.set(xlim=(0, 1), ylim=(0, 1))
        cal_ax.set_xlabel(_("predicted probability · AUC≈{auc}").format(auc=_g(h.get("auc"), 3)), fontsize=8,
                          color="#475569")
        cal_ax.set_ylabel(_("observed rate"), fontsize=8, color="#475569")
    else:
        _empty(cal_ax, _("no held-out metrics"))

    if attack is not None:
        roc_ax = axes[2]
        flagged = bool(attack.get("flagged"))
        title(roc_ax, _("Membership inference — FLAGGED") if flagged else _("Membership inference (not flagged)")
              if attack else _("Membership inference"))
        roc = [(float(p[0]), float(p[1])) for p in attack.get("roc") or []
               if isinstance(p, list | tuple) and len(p) == 2]
        if roc:
            roc_ax.plot([x for x, _ in roc], [y for _, y in roc], color="#dc2626" if flagged else "#7c3aed",
                        linewidth=2, label=_("attack AUC {auc}").format(auc=_g(attack.get("auc"), 3)))
            roc_ax.plot([0, 1], [0, 1], ls="--", color="#94a3b8", linewidth=1, label=_("chance"))
            roc_ax.set(xlim=(0, 1), ylim=(0, 1))
            roc_ax.set_xlabel(_("false positive rate"), fontsize=8, color="#475569")
            roc_ax.set_ylabel(_("true positive rate"), fontsize=8, color="#475569")
            roc_ax.legend(fontsize=8, frameon=False, loc="lower right")
        else:
            _empty(roc_ax, _("no attack report"))
    fig.set_size_inches(width, 3.6)  # _empty shrinks a lone plot; this one keeps its panels
    return fig


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _g(v: Any, digits: int = 2) -> str:
    return f"{v:.{digits}g}" if _finite(v) else "?"
