"""The feature assets as an analyst would write them in pandas: the comparison, not project code.

The same columns as sql/user_daily_activity.sql, sql/user_profile.sql and sql/user_features.sql,
computed from the day's raw events read into a DataFrame, with plain groupby / merge code.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

EVENT_TYPES = ("view", "click", "cart", "purchase")
WINDOW_COLUMNS = ("sessions", "views", "carts", "purchases", "revenue")
PROFILE_DATES = ("first_seen_date", "last_seen_date", "first_purchase_date", "last_purchase_date")
PROFILE_COUNTS = ("active_days", "events", "sessions", "views", "clicks", "carts", "purchases")


def read_events(files: list[str], day_start: dt.datetime, day_end: dt.datetime) -> pd.DataFrame:
    """The day's events from Parquet files, identical rows kept: without an event id raw_events
    cannot tell two real events from a double fire, so it keeps both (and counts them).

    Naive timestamps are UTC, as the file source reads them.
    """
    events = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    start = pd.Timestamp(day_start).tz_convert("UTC").tz_localize(None)
    end = pd.Timestamp(day_end).tz_convert("UTC").tz_localize(None)
    events = events[(events["event_ts"] >= start) & (events["event_ts"] < end)]
    events = events[["user_id", "event_ts", "event_name", "value"]].copy()
    events["value"] = events["value"].fillna(0.0)
    return events


def daily_activity(events: pd.DataFrame, session_gap_seconds: int = 1800) -> pd.DataFrame:
    events = events.sort_values(["user_id", "event_ts"])
    previous = events.groupby("user_id")["event_ts"].shift()
    gap = (events["event_ts"] - previous).dt.total_seconds()
    events["new_session"] = previous.isna() | (gap > session_gap_seconds)
    for name in EVENT_TYPES:
        events[name + "s"] = events["event_name"] == name
    events["revenue"] = events["value"].where(events["event_name"] == "purchase", 0.0)
    activity = events.groupby("user_id").agg(
        events=("event_name", "size"),
        sessions=("new_session", "sum"),
        views=("views", "sum"),
        clicks=("clicks", "sum"),
        carts=("carts", "sum"),
        purchases=("purchases", "sum"),
        revenue=("revenue", "sum"),
        first_event_ts=("event_ts", "min"),
        last_event_ts=("event_ts", "max"),
    )
    return activity.reset_index()


def profile(previous: pd.DataFrame | None, activity: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """profile[D] from profile[D-1] (None on the first day) and activity[D]."""
    day_ts = pd.Timestamp(day)
    if previous is None:
        previous = pd.DataFrame(
            {
                "user_id": pd.Series(dtype=object),
                **{c: pd.Series(dtype="datetime64[ns]") for c in PROFILE_DATES},
                **{c: pd.Series(dtype="int64") for c in PROFILE_COUNTS},
                "revenue": pd.Series(dtype="float64"),
            }
        )
    merged = previous.merge(activity, on="user_id", how="outer", suffixes=("_before", ""), indicator=True)
    active = merged["_merge"] != "left_only"
    bought = merged["purchases"].fillna(0) > 0
    out = pd.DataFrame({"user_id": merged["user_id"]})
    out["first_seen_date"] = merged["first_seen_date"].fillna(day_ts)
    out["last_seen_date"] = merged["last_seen_date"].where(~active, day_ts)
    out["first_purchase_date"] = merged["first_purchase_date"].mask(
        merged["first_purchase_date"].isna() & bought, day_ts
    )
    out["last_purchase_date"] = merged["last_purchase_date"].where(~bought, day_ts)
    out["active_days"] = merged["active_days"].fillna(0) + active.astype(int)
    for column in ("events", "sessions", "views", "clicks", "carts", "purchases", "revenue"):
        out[column] = merged[column + "_before"].fillna(0) + merged[column].fillna(0)
    return out


def features(
    profile_today: pd.DataFrame, activity_history: dict[dt.date, pd.DataFrame], day: dt.date
) -> pd.DataFrame:
    """user_features[D]: lifetime columns from the profile, 7/28/90-day windows from the activity."""
    recent = []
    for activity_day, activity in activity_history.items():
        days_ago = (day - activity_day).days
        if 0 <= days_ago < 90:
            recent.append(activity.assign(days_ago=days_ago))
    recent = pd.concat(recent, ignore_index=True)
    windows = pd.DataFrame(index=pd.Index(recent["user_id"].unique(), name="user_id"))
    for days in (7, 28, 90):
        inside = recent[recent["days_ago"] < days]
        grouped = inside.groupby("user_id")
        windows[f"active_days_{days}d"] = grouped.size()
        for column in WINDOW_COLUMNS:
            windows[f"{column}_{days}d"] = grouped[column].sum()
    windows = windows.fillna(0).reset_index()

    p = profile_today
    day_ts = pd.Timestamp(day)
    out = pd.DataFrame({"user_id": p["user_id"]})
    out["tenure_days"] = (day_ts - p["first_seen_date"]).dt.days
    out["days_since_last_seen"] = (day_ts - p["last_seen_date"]).dt.days
    out["days_since_last_purchase"] = (day_ts - p["last_purchase_date"]).dt.days
    out["lifetime_active_days"] = p["active_days"]
    for column in ("sessions", "views", "carts", "purchases", "revenue"):
        out[f"lifetime_{column}"] = p[column]
    out["average_order_value"] = p["revenue"] / p["purchases"].replace(0, np.nan)
    out["purchases_per_active_day"] = p["purchases"] / p["active_days"].replace(0, np.nan)
    out["active_day_share"] = p["active_days"] / (out["tenure_days"] + 1)
    out = out.merge(windows, on="user_id", how="left")
    window_columns = [c for c in windows.columns if c != "user_id"]
    out[window_columns] = out[window_columns].fillna(0)
    out["cart_conversion_28d"] = out["purchases_28d"] / out["carts_28d"].replace(0, np.nan)
    return out
