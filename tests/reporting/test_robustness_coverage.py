"""The robustness interval on simulated studies with known variance components covers the truth as often as it says."""

from __future__ import annotations

from robustness_simulation import coverage  # same folder


def test_the_95_percent_interval_of_the_primary_contrast_covers_the_truth_95_percent_of_the_time() -> None:
    """400 studies × 4 severities; fewer resamples than the report's, to keep it fast (the benchmark runs 1,000)."""
    result = coverage(400, resamples=500, seed=0, scope="all")
    by_severity = ", ".join(f"{severity:g}: {share:.3f}" for severity, share in result.by_severity.items())
    print(
        f"\ncoverage {result.coverage:.4f} of {result.intervals} intervals ({by_severity}); mean half-width "
        f"{result.mean_half_width:.4f}"
    )
    assert result.intervals == 1600
    assert 0.93 <= result.coverage <= 0.97
