"""A client's day of behaviour features -> anomaly scores, flags and reasons."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from karte_assets.anomaly.detectors import (
    LIGHTGBM,
    UNSUPERVISED,
    supervised_scores,
    tail_scores,
    unsupervised_scores,
)
from karte_assets.anomaly.features import FEATURES, feature_matrix

SCORE_COLUMNS = ["client_id", "user_id", "anomaly_score", "flagged", "reasons", "model_version"]
# Fewer known cheaters than this and the supervised model is not trusted: the day is scored
# without labels, and the metadata says why.
MIN_LABELLED_USERS = 20
REASONS_PER_USER = 3


@dataclass(frozen=True)
class DetectorSettings:
    """How one client's users are scored and flagged (``AnomalyConfig`` carries the same fields)."""

    detector: str = "isolation_forest"
    contamination: float = 0.01
    score_threshold: float | None = None
    n_estimators: int = 100
    max_samples: int | None = None  # None: users_per_tree() picks it from the flagged share
    seed: int = 0

    def users_per_tree(self) -> int:
        """``max_samples``, or by default enough users per tree for about three of the flagged share.

        The sample size sets what a tree can tell apart: the users beyond its sample's extremes all
        isolate alike, so a tree of 256 cannot rank the top 0.1 % (bench/anomaly.py's day, 0.1 %
        planted: precision 0.12 at 256 of 200k users, 0.985 at 3,000 of 1M), while a tree holding
        many of the anomalous users lets them hide each other (masking: CDNOW with 1 % planted,
        0.66-0.71 at 4,096, 0.89-0.94 at 300; EVALUATION.md). Three per tree sits between the two.
        """
        if self.max_samples is not None:
            return self.max_samples
        return max(256, math.ceil(3 / self.contamination)) if self.contamination > 0 else 256

    def version(self, detector: str, day: dt.date) -> str:
        """``<detector>:<hash of the settings>:<day fitted on>``: same inputs, same version."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]
        return f"{detector}:{digest}:{day.isoformat()}"


@dataclass
class ClientDay:
    scores: pd.DataFrame  # SCORE_COLUMNS, one row per user
    detector: str  # the detector whose scores were written
    comparison: pd.DataFrame  # each detector against the labels (empty without labels)
    note: str  # why the supervised model was or was not used


def flag(scores: np.ndarray, contamination: float, threshold: float | None) -> np.ndarray:
    """With a threshold, the users scoring at least it; otherwise the top ``contamination`` share
    (rounded down) by score, ties by position (rows come ordered by user id)."""
    if threshold is not None:
        return scores >= threshold
    flagged = np.zeros(len(scores), dtype=bool)
    flagged[np.argsort(-scores, kind="stable")[: int(contamination * len(scores))]] = True
    return flagged


def reasons(frame: pd.DataFrame, matrix: np.ndarray, rows: np.ndarray) -> list[str]:
    """For each of ``rows``: the features whose values are rarest among the day's users (the
    largest per-feature tail score, as ECOD sums them), as ``name=value`` strings, rarest first."""
    left, right = tail_scores(matrix)
    rarity = np.maximum(left, right)[rows]
    top = np.argsort(-rarity, axis=1, kind="stable")[:, :REASONS_PER_USER]
    values = frame.loc[:, list(FEATURES)].to_numpy(dtype=np.float64)[rows]
    return [
        "; ".join(f"{FEATURES[j]}={values[i, j]:.4g}" for j in top[i] if rarity[i, j] > 0)
        for i in range(len(rows))
    ]


def precision_at(labels: np.ndarray, flagged: np.ndarray) -> float:
    return float(labels[flagged].mean()) if flagged.any() else float("nan")


def compare(labels: np.ndarray, scored: dict[str, np.ndarray], settings: DetectorSettings) -> pd.DataFrame:
    """Each detector against the known cheaters: ROC AUC and precision at the flagged share."""
    from sklearn.metrics import roc_auc_score  # seconds of import: not at the code location's load

    rows = []
    for name, scores in scored.items():
        flagged = flag(scores, settings.contamination, None)
        rows.append(
            {
                "detector": name,
                "roc_auc": float(roc_auc_score(labels, scores)),
                "precision_at_flagged": precision_at(labels, flagged),
                "flagged": int(flagged.sum()),
            }
        )
    return pd.DataFrame(rows)


def score_client_day(
    features: pd.DataFrame,
    settings: DetectorSettings,
    day: dt.date,
    labelled: set[str] | None = None,
) -> ClientDay:
    """Scores, flags and reasons of one client's users (``features`` ordered by user id).

    Without labels, ``settings.detector`` scores them. With ``labelled`` (the client's known cheaters
    as of ``day``) and enough of them among these users, the out-of-fold LightGBM scores are
    written, and every detector is compared against the labels.
    """
    if settings.detector not in UNSUPERVISED:
        raise ValueError(f"detector {settings.detector!r} is not one of {UNSUPERVISED}")
    matrix = feature_matrix(features)
    user_ids = features["user_id"].to_numpy()
    scored = {
        settings.detector: unsupervised_scores(
            settings.detector, matrix, settings.seed, settings.n_estimators, settings.users_per_tree()
        )
    }
    chosen, comparison, note = settings.detector, pd.DataFrame(), "no labels given"
    if labelled is not None:
        labels = np.isin(user_ids, list(labelled)).astype(int)
        positives = int(labels.sum())
        if MIN_LABELLED_USERS <= positives <= len(labels) - MIN_LABELLED_USERS:
            for name in UNSUPERVISED:
                if name not in scored:
                    scored[name] = unsupervised_scores(
                        name, matrix, settings.seed, settings.n_estimators, settings.users_per_tree()
                    )
            scored[LIGHTGBM] = supervised_scores(matrix, labels, settings.seed)
            chosen, note = LIGHTGBM, f"{positives} known cheaters among {len(labels)} users"
            comparison = compare(labels, scored, settings)
        else:
            note = f"{positives} known cheaters among {len(labels)} users: under {MIN_LABELLED_USERS}, unsupervised"
    scores = scored[chosen]
    flagged = flag(scores, settings.contamination, settings.score_threshold)
    why = np.full(len(scores), None, dtype=object)
    why[flagged] = reasons(features, matrix, np.flatnonzero(flagged))
    frame = pd.DataFrame(
        {
            "client_id": features["client_id"].to_numpy(),
            "user_id": user_ids,
            "anomaly_score": scores,
            "flagged": flagged,
            "reasons": why,
            "model_version": settings.version(chosen, day),
        }
    )
    return ClientDay(scores=frame, detector=chosen, comparison=comparison, note=note)
