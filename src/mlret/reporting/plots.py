"""Figures of the report, one idea each (matplotlib, PNG).

Differences between strategies are a few points of mAP, so value axes are
fitted to the data rather than drawn from 0 (the axis label says so), and
every bar carries its 95% bootstrap interval over questions. Colour scales of
the X→Y heatmaps are shared by every heatmap of a dataset, so colours compare
across strategies; difference heatmaps use a diverging scale centred at 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on pipeline machines
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.colors import Colormap, Normalize

from mlret.reporting.collect import pair_map
from mlret.reporting.robustness import primary_scope_of, scope_title
from mlret.vocabulary import BASE, Setting, model_label

#: Strategies that difference heatmaps are taken against (when they ran).
REFERENCES = (BASE, "multi")
NO_PROFILE = "-"  # the base model's profile in the tables
CI_NOTE = "error bars: 95% bootstrap interval over questions, all language versions of a question drawn together"
METRIC_LABELS = {"map": "mAP", "rank_distance": "rank distance"}


def figure_name(*parts: str) -> str:
    """File stem from its non-empty parts: the base model has no profile, and ``a--b`` names nothing."""
    return "-".join(p for p in parts if p and p != NO_PROFILE)


def in_order(values: Iterable[str], order: Iterable[str]) -> list[str]:
    """The distinct ``values``, those named in ``order`` first and in that order, the rest sorted."""
    present = list(dict.fromkeys(values))
    known = [v for v in order if v in present]
    return known + sorted(v for v in present if v not in known)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def display_label(strategy: str, profile: str) -> str:
    """A model as a figure's title names it: its :func:`~mlret.vocabulary.model_label` in words ("hybrid, balanced")."""
    label = model_label(strategy, profile)
    return "base model" if label == BASE else label.replace("/", ", ")


def _text_colour(cmap: Colormap, norm: Normalize, value: float) -> str:
    red, green, blue, _ = cmap(norm(value))
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"


def cell_text(value: float, fmt: str) -> str:
    """``value`` in ``fmt``, and "0" where it rounds to zero: "+0.00" and "-0.00" suggest a sign the data lack."""
    text = format(value, fmt)
    return "0" if float(text) == 0 else text


def _heatmap(
    matrix: pd.DataFrame, norm: Normalize, cmap_name: str, title: str, scale_label: str, fmt: str, path: Path
) -> Path:
    cmap = plt.get_cmap(cmap_name)
    values = matrix.to_numpy(dtype=float)
    fig, ax = plt.subplots(
        figsize=(2.2 + 0.55 * len(matrix.columns), 1.2 + 0.5 * len(matrix.index)), layout="constrained"
    )
    image = ax.imshow(values, norm=norm, cmap=cmap)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns)
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_xlabel("passage language (pool)")
    ax.set_ylabel("query language")
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(
                j, i, cell_text(value, fmt), ha="center", va="center", fontsize=7, color=_text_colour(cmap, norm, value)
            )
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, label=scale_label)
    return _save(fig, path)


def colour_limits(matrices: Iterable[pd.DataFrame], centred: bool = False) -> tuple[float, float]:
    """The colour range of a set of heatmaps: their smallest and largest value, or ±the largest magnitude when
    ``centred`` (differences, so that 0 gets the neutral colour). A fixed 0–1 range would spend most of the
    scale on values no model reaches and leave differences of a few points invisible."""
    values = np.concatenate([m.to_numpy(dtype=float).ravel() for m in matrices])
    values = values[~np.isnan(values)]
    if values.size == 0:
        return (-1.0, 1.0) if centred else (0.0, 1.0)
    low, high = float(values.min()), float(values.max())
    if centred:
        bound = max(abs(low), abs(high)) or 0.01
        return -bound, bound
    return (low, high) if high > low else (low - 0.01, high + 0.01)


def pair_heatmaps(results: pd.DataFrame, out_dir: Path, strategies: Sequence[str] = ()) -> list[Path]:
    """X → Y mAP per strategy, profile and dataset (seed-averaged; mono on the diagonal),
    and its difference from the base model and from ``multi`` under the same profile."""
    written = []
    pairs = results[results.setting != Setting.MULTI]
    for dataset, block in pairs.groupby("dataset", sort=True):
        matrices = {
            (strategy, profile): pair_map(group).unstack("pool_lang")
            for (strategy, profile), group in block.groupby(["strategy", "profile"], sort=True)
        }
        order = {s: i for i, s in enumerate(in_order([s for s, _ in matrices], [BASE, *strategies]))}
        keys = sorted(matrices, key=lambda k: (order[k[0]], k[1]))
        norm = Normalize(*colour_limits(matrices.values()))
        for strategy, profile in keys:
            written.append(
                _heatmap(
                    matrices[strategy, profile],
                    norm,
                    "viridis",
                    f"{dataset}: X→Y mAP, {display_label(strategy, profile)}",
                    f"mAP (scale: {norm.vmin:.2f}–{norm.vmax:.2f}, all {dataset} heatmaps)",
                    ".2f",
                    out_dir / f"heatmap-{figure_name(dataset, strategy, profile)}.png",
                )
            )
        for reference in REFERENCES:
            diffs = {}
            for strategy, profile in keys:
                ref_key = (BASE, NO_PROFILE) if reference == BASE else (reference, profile)
                if strategy not in (BASE, reference) and ref_key in matrices:
                    diffs[strategy, profile] = matrices[strategy, profile] - matrices[ref_key]
            if not diffs:
                continue
            norm_diff = Normalize(*colour_limits(diffs.values(), centred=True))
            ref_name = display_label(BASE, NO_PROFILE) if reference == BASE else reference
            for (strategy, profile), diff in diffs.items():
                written.append(
                    _heatmap(
                        diff,
                        norm_diff,
                        "RdBu",
                        f"{dataset}: X→Y mAP, {display_label(strategy, profile)} − {ref_name}",
                        f"Δ mAP (blue: better than {ref_name}; one cell: no interval,\nsee results.md for what noise "
                        "allows)",
                        "+.2f",
                        out_dir / f"heatmap-{figure_name(dataset, strategy, profile)}-vs-{reference}.png",
                    )
                )
    return written


def _zoom(ax: plt.Axes, low: np.ndarray, high: np.ndarray, reference: float | None) -> bool:
    """Fit the value axis to the intervals; include the reference value when that at most doubles the range.

    Returns whether the reference lies on the axis.
    """
    lo, hi = float(np.nanmin(low)), float(np.nanmax(high))
    span = hi - lo or 0.05 * abs(hi) or 0.05
    on_axis = reference is not None and not np.isnan(reference) and max(hi, reference) - min(lo, reference) <= 2 * span
    if on_axis and reference is not None:
        lo, hi = min(lo, reference), max(hi, reference)
    pad = 0.12 * (hi - lo or span)
    ax.set_ylim(lo - pad, hi + pad)
    return on_axis


def grouped_bars(ax: plt.Axes, rows: pd.DataFrame, metric: str, strategies: Sequence[str]) -> str:
    """Trained models as bars (strategy on the axis, profile by colour), the base model as a reference line.

    Returns a note for the panel title when the base model lies off the fitted axis (else "").
    """
    trained = rows[rows.strategy != BASE]
    base = rows[rows.strategy == BASE]
    if trained.empty:
        return ""
    order = in_order(trained.strategy, strategies)
    profiles = list(dict.fromkeys(trained.profile))
    width = 0.8 / max(len(profiles), 1)
    for k, profile in enumerate(profiles):
        part = trained[trained.profile == profile].set_index("strategy").reindex(order)
        x = np.arange(len(order)) + (k - (len(profiles) - 1) / 2) * width
        err = np.nan_to_num(
            np.vstack([part[metric] - part[f"{metric}_ci_low"], part[f"{metric}_ci_high"] - part[metric]])
        )
        ax.bar(x, part[metric], width, yerr=err, capsize=3, label=profile, color=f"C{k}")
    ax.set_xticks(range(len(order)), order)
    reference = float(base[metric].iloc[0]) if not base.empty else None
    on_axis = _zoom(ax, trained[f"{metric}_ci_low"].to_numpy(), trained[f"{metric}_ci_high"].to_numpy(), reference)
    if on_axis and reference is not None:
        ax.axhline(reference, color="black", linestyle="--", linewidth=1, label="base model (zero-shot)")
    elif reference is not None:
        return f"base model {reference:.3g}, {'below' if reference < ax.get_ylim()[0] else 'above'} the axis"
    return ""


def _legend_outside(fig: plt.Figure, axes: Iterable[plt.Axes], title: str) -> None:
    handles: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), title=title, loc="outside right upper", fontsize=8)


def strategy_bars(
    table: pd.DataFrame, out_dir: Path, strategies: Sequence[str] = (), metric: str = "map"
) -> list[Path]:
    """Grouped bars: strategy × profile, one panel per setting (paper order), one figure per dataset."""
    written = []
    for dataset, block in table.groupby("dataset", sort=True):
        settings = in_order(block.setting, [s.value for s in Setting])
        fig, axes = plt.subplots(
            1, len(settings), figsize=(3.6 * len(settings) + 1.6, 3.6), squeeze=False, layout="constrained"
        )
        for ax, setting in zip(axes[0], settings):
            note = grouped_bars(ax, block[block.setting == setting], metric, strategies)
            ax.set_title(f"{setting}\n({note})" if note else setting, fontsize=10)
            ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (axis not from 0)")
        _legend_outside(fig, axes[0], "profile")
        fig.suptitle(f"{dataset}: {METRIC_LABELS.get(metric, metric)} by strategy and profile ({CI_NOTE})", fontsize=10)
        written.append(_save(fig, out_dir / f"bars-{figure_name(dataset, metric)}.png"))
    return written


def rank_distance_bars(table: pd.DataFrame, out_dir: Path, strategies: Sequence[str] = ()) -> list[Path]:
    """Language bias in the multilingual pool: rank distance per strategy, one axis per dataset (scales differ)."""
    multi = table[(table.setting == Setting.MULTI) & table.rank_distance.notna()]
    if multi.empty:
        return []
    datasets = sorted(multi.dataset.unique())
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(3.8 * len(datasets) + 1.6, 3.6), squeeze=False, layout="constrained"
    )
    for ax, dataset in zip(axes[0], datasets):
        note = grouped_bars(ax, multi[multi.dataset == dataset], "rank_distance", strategies)
        ax.set_title(f"{dataset}\n({note})" if note else dataset, fontsize=10)
        ax.set_ylabel("rank distance (axis not from 0)")
    _legend_outside(fig, axes[0], "profile")
    fig.suptitle(
        "Multilingual pool: rank distance of a question's answers across languages\n(lower = less language bias; "
        f"{CI_NOTE})",
        fontsize=10,
    )
    return [_save(fig, out_dir / "rank-distance.png")]


def robustness_curves(robustness: pd.DataFrame, out_dir: Path, strategies: Sequence[str] = ()) -> list[Path]:
    """Specific drop in mAP against severity, one line per strategy with its interval, one panel per setting scope.

    A point without an interval (too few seeds to estimate the run-to-run noise) is drawn hollow
    and without an error bar, rather than with a zero-width one that would read as exact.
    """
    written = []
    drops = robustness[robustness.kind == "drop"]
    for dataset, block in drops.groupby("dataset", sort=True):
        scopes = [s for s in ("all", *(s.value for s in Setting)) if s in set(block.scope)]
        severities = sorted(block.severity.unique())
        fig, axes = plt.subplots(
            1, len(scopes), figsize=(3.2 * len(scopes), 3.4), layout="constrained", sharey=True, squeeze=False
        )
        for ax, scope in zip(axes[0], scopes):
            part = block[block.scope == scope]
            order = in_order(part.strategy, strategies)
            for i, strategy in enumerate(order):
                rows = part[part.strategy == strategy].set_index("severity").reindex(severities)
                x = np.arange(len(severities)) + (i - (len(order) - 1) / 2) * 0.08  # dodge so intervals stay readable
                yerr = [rows.specific_drop - rows.ci_low, rows.ci_high - rows.specific_drop]  # NaN: no bar
                line = ax.errorbar(x, rows.specific_drop, yerr=yerr, marker="o", capsize=3, label=strategy)
                bare = rows.specific_drop.notna() & (rows.ci_low.isna() | rows.ci_high.isna())
                if bare.any():
                    ax.plot(
                        x[bare.to_numpy()],
                        rows.specific_drop[bare],
                        linestyle="none",
                        marker="o",
                        markerfacecolor="white",
                        color=line.lines[0].get_color(),
                    )
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_xticks(np.arange(len(severities)), [f"{s * 100:g}%" for s in severities])
            ax.set_xlabel("share of training questions kept")
            ax.set_title(scope_title(str(scope), primary_scope_of(robustness)), fontsize=10)
        axes[0][0].set_ylabel("specific drop in mAP vs balanced\n(above 0: loses more than\nthe full-data languages)")
        fig.suptitle(
            f"{dataset}: robustness to imbalance (95% t interval: questions and training runs; hollow: no interval)",
            fontsize=10,
        )
        _legend_outside(fig, list(axes[0]), "strategy")
        written.append(_save(fig, out_dir / f"robustness-{dataset}.png"))
    return written


def loss_curves_figure(losses: pd.DataFrame, out_dir: Path) -> Path:
    """Training loss per step, one line per run: the static twin of the `training loss` DVC plot, readable offline."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for run, rows in losses.groupby("run", sort=True):
        ax.plot(rows.step, rows.loss, linewidth=0.8, label=run)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (InfoNCE)")
    ax.set_title("Training loss per step, one line per strategy/profile/seed", fontsize=10)
    if len(losses):
        _legend_outside(fig, [ax], "run")
    return _save(fig, out_dir / "train-loss.png")
