"""Recompute the mono-scope specific contrast from the X→Y matrices and compare it with reports/robustness.csv.

An independent check of a finished study, from two of its outputs that are computed apart:
``reports/bases/{base}/pairs/{dataset}-{strategy}-{profile}.csv`` (mean AP per query × pool language,
seeds included) and the robustness table, whose ``base`` column holds one block of rows per base model.
Each base is checked on its own rows against its own matrices (``--base`` picks one; all bases of the
table by default). For each ladder cell of the profiles both strategies trained on (profile P,
reduced language L, F the languages P keeps in full), a strategy's mono-scope specific drop is

    (M_bal[L, L] − M_P[L, L]) − mean over X ∈ F of (M_bal[X, X] − M_P[X, X]),

averaged over the cells of a severity; the contrast is that of the headline strategy minus multi's.
Prints both values per base, dataset and severity and exits 1 when one differs by more than ``--tolerance``.

    .venv/bin/python benchmarks/check_robustness.py            # after `dvc repro`
    .venv/bin/python benchmarks/check_robustness.py --base minilm
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from mlret.params import Params, load_params

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


def check_base(params: Params, rows: pd.DataFrame, base: str, pairs_dir: Path, where: Path) -> float:
    """Recompute each mono-scope contrast row of ``base`` (``rows``: its block of the table) from its pair matrices
    under ``pairs_dir``; print both values per row and return the largest difference."""
    contrasts = rows[(rows.kind == "contrast") & (rows.scope == "mono")]
    if contrasts.empty:
        raise SystemExit(
            f"{where}: no mono-scope contrast row for base {base!r}; does the grid train hybrid and multi on the "
            f"ladder from {base!r}?"
        )
    worst = 0.0
    for row in contrasts.itertuples():
        headline = row.strategy.split(" − ")[0]
        # The report averages over the profiles both strategies of this base trained on, and so does the check.
        trained = {run.profile for run in params.runs_of(base) if run.strategy == headline} & {
            run.profile for run in params.runs_of(base) if run.strategy == COMPARATOR
        }
        languages = list(pair_matrix(pairs_dir, row.dataset, headline, REFERENCE).index)
        cells = []
        for name, profile in params.profiles.items():
            if name == REFERENCE or name not in trained:
                continue
            full = [x for x in languages if profile.fraction(x) >= 1.0]
            cells += [(name, lang, full) for lang in languages if profile.fraction(lang) == row.severity]
        recomputed = mono_specific_drop(pairs_dir, row.dataset, headline, cells) - mono_specific_drop(
            pairs_dir, row.dataset, COMPARATOR, cells
        )
        worst = max(worst, abs(recomputed - row.specific_drop))
        print(
            f"{base} {row.dataset} severity {row.severity:g} ({len(cells)} cells): table {row.specific_drop:+.5f}, "
            f"from pairs {recomputed:+.5f}"
        )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--base", default=None, help="the base model to check (default: every base of the table)")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()
    params = load_params()
    where = args.reports / "robustness.csv"
    table = pd.read_csv(where)
    if "base" not in table.columns:
        raise SystemExit(f"{where}: no `base` column; rebuild it with `dvc repro report`.")
    found = list(dict.fromkeys(table.base.astype(str)))
    if args.base is not None and args.base not in found:
        raise SystemExit(f"{where}: no rows of base {args.base!r}; it holds {found}.")
    worst = {
        base: check_base(
            params, table[table.base.astype(str) == base], base, args.reports / "bases" / base / "pairs", where
        )
        for base in ([args.base] if args.base is not None else found)
    }
    for base, difference in worst.items():
        print(f"{base}: largest difference {difference:.2e} (tolerance {args.tolerance:g})")
    sys.exit(0 if max(worst.values()) <= args.tolerance else 1)


if __name__ == "__main__":
    main()
