"""The loyalty model on a real purchase log, beside the classical baselines: ``make evaluate``.

The log is CDNOW (Fader, Hardie and Lee 2005): 69,659 purchases of 23,570 customers who first bought
in the first quarter of 1997, one row per customer and day, through 1998-06-30. It ships inside the
``lifetimes`` package (dependency group ``evaluate``), so nothing is downloaded at run time.

The whole graph runs on it as a user would run it: the log is written as an event CSV (date-only
timestamps, no event id) and raw_events, user_daily_activity, user_profile and user_features are
backfilled from the first day to the cut-off day D in one run; loyalty_training_set, loyalty_model
and loyalty_scores are then built for D, with only what is known on D. Every customer seen by D is
scored, and judged on whether they buy in (D, D + horizon], which the graph never saw.

Baselines, fitted on the same customers with the same history up to D: the number of purchase days
(a frequency ranking), and BG/NBD and Pareto/NBD fitted by ``lifetimes`` (their expected number of
purchases in the horizon). Metrics: ROC AUC, and top-decile lift (the buying rate of the top 10 %
by score over the buying rate of all).
"""

import argparse
import datetime as dt
import os
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
FIRST_DAY = dt.date(1997, 1, 1)
UPSTREAM = ["raw_events", "user_daily_activity", "user_profile", "user_features"]
MODEL = ["loyalty_training_set", "loyalty_model", "loyalty_scores"]


def cdnow_purchases() -> pd.DataFrame:
    """CDNOW_master.txt as shipped in lifetimes: customer, yyyymmdd, CDs, dollars (one row per customer-day)."""
    # Read as a file of the package: lifetimes.datasets imports pkg_resources, gone from new setuptools.
    text = files("lifetimes").joinpath("datasets/CDNOW_master.txt")
    frame = pd.read_csv(
        text, sep=r"\s+", header=0, names=["customer", "date", "cds", "dollars"], dtype={"customer": str}
    )
    frame["date"] = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d").dt.date
    return frame


def write_events(purchases: pd.DataFrame, path: Path) -> None:
    """The log in the event schema, as a shop's order export would be: no event id, day precision."""
    pd.DataFrame(
        {
            "user_id": purchases["customer"],
            "event_ts": purchases["date"].astype(str),
            "event_name": "purchase",
            "value": purchases["dollars"],
            "cds": purchases["cds"],
        }
    ).to_csv(path, index=False)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The Mann-Whitney form: the chance a buyer outranks a non-buyer, ties counting one half."""
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    positives = labels.sum()
    negatives = len(labels) - positives
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def top_decile_lift(labels: np.ndarray, scores: np.ndarray) -> float:
    """Buying rate among the top 10 % by score over the overall rate; ties at the cut share it evenly."""
    cut = np.quantile(scores, 0.9, method="higher")
    above, at = scores > cut, scores == cut
    take = 0.1 * len(scores) - above.sum()  # how many of the tied rows the top decile still holds
    buyers = labels[above].sum() + (labels[at].mean() * take if at.any() and take > 0 else 0.0)
    return float(buyers / (0.1 * len(scores)) / labels.mean())


def paired_bootstrap(
    labels: np.ndarray, model: np.ndarray, baseline: np.ndarray, rounds: int = 200, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95 % intervals of the model's ROC AUC and top-decile lift minus the baseline's, both judged
    on the same customers drawn with replacement: a difference whose interval holds 0 is noise."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(rounds):
        rows = rng.integers(0, len(labels), len(labels))
        sample = labels[rows]
        differences.append(
            [
                metric(sample, model[rows]) - metric(sample, baseline[rows])
                for metric in (roc_auc, top_decile_lift)
            ]
        )
    low, high = np.percentile(np.array(differences), [2.5, 97.5], axis=0)
    return {"roc_auc": (float(low[0]), float(high[0])), "top_decile_lift": (float(low[1]), float(high[1]))}


def rfm_summary(purchases: pd.DataFrame, cutoff: dt.date) -> pd.DataFrame:
    """frequency (repeat purchase days), recency and T in days, the BG/NBD inputs, from purchases up to D."""
    days = purchases[purchases["date"] <= cutoff].groupby("customer")["date"].agg(["min", "max", "nunique"])
    return pd.DataFrame(
        {
            "frequency": days["nunique"] - 1,
            "recency": [(last - first).days for first, last in zip(days["min"], days["max"], strict=True)],
            "T": [(cutoff - first).days for first in days["min"]],
        },
        index=days.index,
    )


def baselines(purchases: pd.DataFrame, cutoff: dt.date, horizon: int) -> pd.DataFrame:
    from lifetimes import BetaGeoFitter, ParetoNBDFitter

    rfm = rfm_summary(purchases, cutoff)
    scores = pd.DataFrame({"frequency": rfm["frequency"].astype(float)}, index=rfm.index)
    bgnbd = BetaGeoFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"])
    scores["BG/NBD"] = bgnbd.conditional_expected_number_of_purchases_up_to_time(
        horizon, rfm["frequency"], rfm["recency"], rfm["T"]
    )
    pareto = ParetoNBDFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"])
    scores["Pareto/NBD"] = pareto.conditional_expected_number_of_purchases_up_to_time(
        horizon, rfm["frequency"], rfm["recency"], rfm["T"]
    )
    return scores


def graph_runner(
    home: Path, events: Path, cutoff: dt.date, backfill: bool = True, training_set: dict | None = None
):
    """Backfill the upstream assets to D once; the returned function builds the model assets of D for a
    horizon and gives D's scores."""
    # Settings are read once at import: the environment is set first. No per-day snapshot of this
    # history expires (a ten-year retention), so one backfill serves every horizon and training-set
    # setting: a 91-day horizon reaches past the default 112 days by itself (docs/google-cloud.md).
    os.environ.update(
        KARTE_ENV="local",
        KARTE_HOME=str(home),
        KARTE_PARTITIONS_START=FIRST_DAY.isoformat(),
        KARTE_EVENTS_SOURCE=str(events),
        KARTE_SNAPSHOT_RETENTION_DAYS="3650",
    )
    from dagster import DagsterInstance, materialize
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from karte_assets.definitions import ASSETS, local_resources
    from karte_assets.settings import load_settings

    resources = local_resources(load_settings())
    instance = DagsterInstance.ephemeral()

    def run(start: dt.date, selection: list[str], run_config: dict) -> None:
        tags = {
            ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: cutoff.isoformat(),
        }
        materialize(
            ASSETS,
            resources=resources,
            instance=instance,
            tags=tags,
            selection=selection,
            run_config=run_config,
        )

    if backfill:
        run(FIRST_DAY, UPSTREAM, {})

    def scores(horizon: int) -> pd.Series:
        config = {**(training_set or {}), "horizon_days": horizon}
        run(cutoff, MODEL, {"ops": {"loyalty_training_set": {"config": config}}})
        with resources["warehouse"].connect() as connection:
            return (
                connection.execute(
                    "SELECT user_id, loyal_score FROM loyalty_scores WHERE partition_date = $day",
                    {"day": cutoff},
                )
                .df()
                .set_index("user_id")["loyal_score"]
            )

    return scores


def judged(
    purchases: pd.DataFrame, model: pd.Series, cutoff: dt.date, horizon: int
) -> tuple[pd.DataFrame, dict]:
    table = baselines(purchases, cutoff, horizon)
    table.insert(0, "karte_assets model", model.reindex(table.index))
    end = cutoff + dt.timedelta(days=horizon)
    buyers = set(purchases.loc[(purchases["date"] > cutoff) & (purchases["date"] <= end), "customer"])
    labels = table.index.isin(buyers).astype(int)
    model_scores = table["karte_assets model"].to_numpy()

    def row(name: str) -> tuple:
        scores = table[name].to_numpy()
        intervals = (
            ("", "")
            if name == "karte_assets model"
            else tuple(
                "[{:+.4f}, {:+.4f}]".format(*interval)
                for interval in paired_bootstrap(labels, model_scores, scores).values()
            )
        )
        return (name, roc_auc(labels, scores), top_decile_lift(labels, scores), *intervals)

    results = pd.DataFrame(
        [row(name) for name in table.columns],
        columns=["ranking", "roc_auc", "top_decile_lift", "model_minus_auc_95", "model_minus_lift_95"],
    )
    facts = {
        "customers": len(table),
        "scored_by_graph": int(model.reindex(table.index).notna().sum()),
        "buyers": int(labels.sum()),
    }
    return results, facts


def main(argv: list[str] | None = None) -> None:
    # No abbreviations: the parts' own arguments pass through (demand's --horizon is not --horizons).
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument(
        "--part",
        choices=("loyalty", "anomaly", "demand"),
        default="loyalty",
        help="loyalty: this module's evaluation; anomaly: evaluation/anomaly.py, demand: evaluation/demand.py"
        " (each takes its own arguments)",
    )
    parser.add_argument("--cutoff", type=dt.date.fromisoformat, default=dt.date(1997, 9, 30))
    parser.add_argument("--horizons", type=int, nargs="+", default=[28, 91])
    parser.add_argument(
        "--home", type=Path, default=None, help="a KARTE_HOME to keep (default: a temporary one)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="--home already holds the backfill: build only D's model"
    )
    parser.add_argument("--max-snapshots", type=int, default=None, help="loyalty_training_set.max_snapshots")
    args, rest = parser.parse_known_args(argv)
    if args.part == "anomaly":
        from evaluation import anomaly

        return anomaly.main(rest)
    if args.part == "demand":
        from evaluation import demand

        return demand.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    training_set = {"max_snapshots": args.max_snapshots} if args.max_snapshots else {}
    purchases = cdnow_purchases()
    with tempfile.TemporaryDirectory(prefix="karte-eval-") as scratch:
        home = args.home or Path(scratch)
        home.mkdir(parents=True, exist_ok=True)
        events = home / "cdnow_events.csv"
        write_events(purchases, events)
        started = time.perf_counter()
        scores = graph_runner(home, events, args.cutoff, backfill=not args.reuse, training_set=training_set)
        print(
            f"upstream backfill {FIRST_DAY}..{args.cutoff}: {time.perf_counter() - started:.0f}s", flush=True
        )
        for horizon in args.horizons:
            results, facts = judged(purchases, scores(horizon), args.cutoff, horizon)
            print(f"\ncut-off {args.cutoff}, horizon {horizon} days: {facts}")
            print(results.to_string(index=False, float_format="{:.4f}".format), flush=True)


if __name__ == "__main__":
    main()
