"""Figures of the report, one idea each (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on pipeline machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mlret.reporting.collect import BASE, pair_map  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pair_heatmaps(results: pd.DataFrame, out_dir: Path) -> list[Path]:
    """X → Y mAP per strategy, profile and dataset (seed-averaged; mono on the diagonal)."""
    written = []
    pairs = results[results.setting != "multi"]
    for (dataset, strategy, profile), group in pairs.groupby(["dataset", "strategy", "profile"], sort=True):
        matrix = pair_map(group).unstack("pool_lang")
        fig, ax = plt.subplots(figsize=(1 + 0.55 * len(matrix.columns), 0.8 + 0.5 * len(matrix.index)))
        image = ax.imshow(matrix.to_numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(matrix.columns)), matrix.columns)
        ax.set_yticks(range(len(matrix.index)), matrix.index)
        ax.set_xlabel("passage language (pool)")
        ax.set_ylabel("query language")
        for (i, j), value in np.ndenumerate(matrix.to_numpy()):
            if not np.isnan(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < 0.5 else "black")
        title = "base model" if strategy == BASE else f"{strategy}, {profile}"
        ax.set_title(f"{dataset}: X→Y mAP, {title}")
        fig.colorbar(image, ax=ax, fraction=0.046)
        path = out_dir / f"heatmap-{dataset}-{strategy}-{profile}.png"
        _save(fig, path)
        written.append(path)
    return written


def strategy_bars(table: pd.DataFrame, out_dir: Path, metric: str = "map") -> list[Path]:
    """Grouped bars: strategy × profile, one panel per setting, one figure per dataset, with 95% intervals."""
    written = []
    for dataset, block in table.groupby("dataset", sort=True):
        settings = sorted(block.setting.unique())
        fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 3.6), sharey=True, squeeze=False)
        for ax, setting in zip(axes[0], settings):
            rows = block[block.setting == setting]
            strategies = list(dict.fromkeys(rows.strategy))
            profiles = [p for p in dict.fromkeys(rows.profile)]
            width = 0.8 / max(len(profiles), 1)
            for k, profile in enumerate(profiles):
                part = rows[rows.profile == profile].set_index("strategy").reindex(strategies)
                x = np.arange(len(strategies)) + (k - (len(profiles) - 1) / 2) * width
                err = np.vstack([part[metric] - part[f"{metric}_ci_low"], part[f"{metric}_ci_high"] - part[metric]])
                ax.bar(x, part[metric], width, yerr=err, capsize=2, label=profile if profile != "-" else "base")
            ax.set_xticks(range(len(strategies)), strategies)
            ax.set_title(f"{setting}")
            ax.set_ylabel(metric)
        axes[0][0].legend(title="profile", fontsize=8)
        fig.suptitle(f"{dataset}: {metric} by strategy and profile (95% CI over queries)")
        path = out_dir / f"bars-{dataset}-{metric}.png"
        _save(fig, path)
        written.append(path)
    return written


def rank_distance_bars(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Language bias in the multilingual pool: rank distance per strategy (lower is less biased)."""
    multi = table[(table.setting == "multi") & table.rank_distance.notna()]
    if multi.empty:
        return []
    fig, ax = plt.subplots(figsize=(7, 3.6))
    labels = [f"{r.dataset}\n{r.strategy}/{r.profile}" if r.strategy != BASE else f"{r.dataset}\nbase" for r in multi.itertuples()]
    err = np.vstack([multi.rank_distance - multi.rank_distance_ci_low, multi.rank_distance_ci_high - multi.rank_distance])
    ax.bar(range(len(multi)), multi.rank_distance, yerr=err, capsize=2, color="tab:purple")
    ax.set_xticks(range(len(multi)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("rank distance (lower = less language bias)")
    ax.set_title("Multilingual pool: rank distance of a question's answers across languages")
    path = out_dir / "rank-distance.png"
    _save(fig, path)
    return [path]


def robustness_bars(robustness: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Change in mAP from balanced to each imbalanced profile, split by whether pairs involve a low-resource language."""
    written = []
    for (dataset, profile), block in robustness.groupby(["dataset", "profile"], sort=True):
        pivot = block.pivot(index="strategy", columns="pairs", values="delta_map")
        fig, ax = plt.subplots(figsize=(6, 3.4))
        pivot.plot.bar(ax=ax, rot=0)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel(f"Δ mAP ({profile} − balanced)")
        ax.set_title(f"{dataset}: robustness to imbalance ({profile})")
        path = out_dir / f"robustness-{dataset}-{profile}.png"
        _save(fig, path)
        written.append(path)
    return written
