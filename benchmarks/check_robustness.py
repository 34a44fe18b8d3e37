"""Recompute the mono-scope specific contrast from the X→Y matrices and compare it with reports/robustness.csv.

An independent check of a finished study, from two of its outputs that are computed apart:
``reports/pairs/{dataset}-{strategy}-{profile}.csv`` (mean AP per query × pool language, seeds
included) and the robustness table. For each ladder cell (profile P, reduced language L, F the
languages P keeps in full), a strategy's mono-scope specific drop is

    (M_bal[L, L] − M_P[L, L]) − mean over X ∈ F of (M_bal[X, X] − M_P[X, X]),

averaged over the cells of a severity; the contrast is that of the headline strategy minus multi's.
Prints both values per dataset and severity and exits 1 when one differs by more than ``--tolerance``.

    .venv/bin/python benchmarks/check_robustness.py            # after `dvc repro`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from mlret.params import load_params

REFERENCE = "balanced"
COMPARATOR = "multi"


def pair_matrix(pairs_dir: Path, dataset: str, strategy: str, profile: str) -> pd.DataFrame:
    path = pairs_dir / f"{dataset}-{strategy}-{profile}.csv"
    if not path.exists():
        raise SystemExit(f"{path}: missing; run `dvc repro` first (the report stage writes it).")
    return pd.read_csv(path, index_col=0)


def mono_specific_drop(pairs_dir: Path, dataset: str, strategy: str, cells: list[tuple[str, str, list[str]]]) -> float:
    """Mean over ``cells`` (profile, L, F) of the mono-scope specific drop, straight from the definition."""
    reference = pair_matrix(pairs_dir, dataset, strategy, REFERENCE)
    drops = []
    for profile, lang, full in cells:
        reduced = pair_matrix(pairs_dir, dataset, strategy, profile)
        raw = reference.loc[lang, lang] - reduced.loc[lang, lang]
        full_drop = sum(reference.loc[x, x] - reduced.loc[x, x] for x in full) / len(full)
        drops.append(raw - full_drop)
    return sum(drops) / len(drops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()
    params = load_params()
    table = pd.read_csv(args.reports / "robustness.csv")
    contrasts = table[(table.kind == "contrast") & (table.scope == "mono")]
    if contrasts.empty:
        raise SystemExit(
            f"{args.reports / 'robustness.csv'}: no mono-scope contrast row; does the grid train hybrid and multi on "
            "the ladder?"
        )
    worst = 0.0
    for row in contrasts.itertuples():
        headline = row.strategy.split(" − ")[0]
        languages = list(pair_matrix(args.reports / "pairs", row.dataset, headline, REFERENCE).index)
        cells = []
        for name, profile in params.profiles.items():
            if name == REFERENCE:
                continue
            full = [x for x in languages if profile.fraction(x) >= 1.0]
            cells += [(name, lang, full) for lang in languages if profile.fraction(lang) == row.severity]
        recomputed = mono_specific_drop(args.reports / "pairs", row.dataset, headline, cells) - mono_specific_drop(
            args.reports / "pairs", row.dataset, COMPARATOR, cells
        )
        worst = max(worst, abs(recomputed - row.specific_drop))
        print(
            f"{row.dataset} severity {row.severity:g} ({len(cells)} cells): table {row.specific_drop:+.5f}, from pairs "
            f"{recomputed:+.5f}"
        )
    print(f"largest difference {worst:.2e} (tolerance {args.tolerance:g})")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
