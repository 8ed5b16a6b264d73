"""The graph's asset checks: their names, and how a run's days become one result per check.

An asset runs a whole partition range at once, so each check is judged per day and reported
once for the run: it passes when every day passed, and its metadata names the days that did not.
"""

import datetime as dt
from collections import defaultdict

import numpy as np
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

RAW_EVENTS_VALID = "raw_events_valid"
RAW_EVENTS_VOLUME = "raw_events_volume"
FEATURES_VALID = "user_features_valid"
MODEL_AUC = "model_auc"
SCORES_VALID = "scores_valid"
SCORES_DRIFT = "scores_drift"

# Failing these only warns: the data may be right and the world different.
WARNINGS = {RAW_EVENTS_VOLUME, SCORES_DRIFT}


def spec(name: str, asset: str, description: str, blocking: bool = False) -> AssetCheckSpec:
    return AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


class DayChecks:
    """Collects each check's outcome per day of the run."""

    def __init__(self) -> None:
        self._outcomes: dict[str, dict[dt.date, tuple[bool, str]]] = defaultdict(dict)

    def record(self, name: str, day: dt.date, passed: bool, detail: str) -> None:
        self._outcomes[name][day] = (bool(passed), detail)

    def passed(self, name: str, day: dt.date) -> bool:
        return self._outcomes[name][day][0]

    def results(self) -> list[AssetCheckResult]:
        results = []
        for name, days in self._outcomes.items():
            failed = {day: detail for day, (passed, detail) in sorted(days.items()) if not passed}
            newest = max(days)
            metadata = {
                "days_checked": MetadataValue.int(len(days)),
                "newest_day": MetadataValue.text(days[newest][1]),
            }
            if failed:
                metadata["failed_days"] = MetadataValue.md(
                    "| day | why |\n|---|---|\n"
                    + "\n".join(f"| {day} | {detail} |" for day, detail in failed.items())
                )
            results.append(
                AssetCheckResult(
                    check_name=name,
                    passed=not failed,
                    severity=AssetCheckSeverity.WARN if name in WARNINGS else AssetCheckSeverity.ERROR,
                    metadata=metadata,
                )
            )
        return results


def population_stability_index(previous: np.ndarray, current: np.ndarray) -> float:
    """PSI between two histograms over the same bins (0: same shape; over 0.2: a real shift)."""
    # Empty bins get a small share so that the logarithm stays finite.
    p = np.maximum(previous / max(previous.sum(), 1), 1e-4)
    q = np.maximum(current / max(current.sum(), 1), 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))
