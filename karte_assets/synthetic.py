"""Deterministic synthetic e-commerce tracking events (view -> click -> cart -> purchase).

The model, in the order the code applies it:

* Users arrive every day (Poisson, busier on weekends). Each arrival-day cohort draws its
  users' latent traits from its own seed ``(seed, arrival day)``, and each day's behaviour
  comes from ``(seed, day)``: any day can be generated alone, in any order, by re-deriving
  every cohort so far (cheap and vectorised), with byte-identical results.
* Latent traits: an engagement score ``z`` (drives the daily visit probability and the
  heavy-tailed number of sessions per visit day), a purchase propensity per session (beta,
  positively but noisily correlated with ``z``), a log-normal spend level, and a lifetime
  (exponential, longer for engaged users) after which the user churns for good.
* Two archetypes keep a plain purchase count from being a good loyalty score: *window
  shoppers* (very engaged, almost never buy) and *dormant buyers* (visit on a fixed 1-4 week
  cycle, usually buy, live long). Churned heavy buyers keep high counts but stale recency,
  so recency/frequency/tenure features predict "purchase within 28 days" better.
* Seasonality: weekends lift traffic, the 25th-27th (payday) lifts traffic and conversion,
  and sessions start at an hour drawn from a local profile (quiet nights, evening peak).
* A session is ``1 + Poisson`` views seconds to minutes apart; each view is clicked with a
  fixed rate, each click carted with a propensity-dependent rate, and a session with a cart
  ends in a purchase (of its first carted item) with the user's propensity.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS = ["user_id", "event_ts", "event_name", "value", "session_id", "item_id"]
EVENT_NAMES = np.array(["view", "click", "cart", "purchase"], dtype=object)
# Relative traffic per local hour 0..23: quiet nights, a lunch bump, an evening peak.
HOURLY = np.array([3, 2, 1, 1, 1, 2, 3, 5, 6, 6, 6, 7, 8, 7, 6, 6, 7, 8, 10, 12, 13, 12, 9, 5.0])
HOURLY /= HOURLY.sum()
REGULAR, WINDOW_SHOPPER, DORMANT_BUYER = 0, 1, 2
_COHORT_STREAM, _DAY_STREAM = 0, 1  # keeps cohort and day seeds apart for the same date


@dataclass(frozen=True)
class SyntheticWorld:
    """Parameters of the simulated shop.

    start: the first day of history; users start arriving on this day.
    new_users_per_day: mean number of arrivals on a plain weekday (Poisson).
    seed: root seed of every random stream.
    mean_lifetime_days: mean days from arrival to churn of an average regular user
        (engaged users live longer, dormant buyers three times longer).
    weekend_lift: relative extra visits and arrivals on Saturdays and Sundays.
    payday_lift: relative extra visits, arrivals and conversion on the 25th-27th.
    window_shopper_share: share of users who are very engaged but almost never buy.
    dormant_buyer_share: share of users who visit every 1-4 weeks and usually buy.
    n_items: catalogue size; item popularity is Zipf-like.
    planted_users: bots and cheaters active every day from ``start``, with known ids (see
        ``planted_user_ids``); 0, the default, leaves every generated day unchanged.
    """

    start: datetime.date
    new_users_per_day: float = 200.0
    seed: int = 7
    mean_lifetime_days: float = 50.0
    weekend_lift: float = 0.35
    payday_lift: float = 0.25
    window_shopper_share: float = 0.15
    dormant_buyer_share: float = 0.08
    n_items: int = 2_000
    planted_users: int = 0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _payday(world: SyntheticWorld, day: datetime.date) -> float:
    return 1.0 + world.payday_lift * (25 <= day.day <= 27)


def _traffic(world: SyntheticWorld, day: datetime.date) -> float:
    return (1.0 + world.weekend_lift * (day.weekday() >= 5)) * _payday(world, day)


def _cohort(world: SyntheticWorld, arrival: datetime.date, day: datetime.date) -> dict[str, np.ndarray]:
    """Traits of the users who arrived on ``arrival``, restricted to those still alive on ``day``."""
    rng = np.random.default_rng([world.seed, _COHORT_STREAM, arrival.toordinal()])
    n = rng.poisson(world.new_users_per_day * _traffic(world, arrival))
    shares = [world.window_shopper_share, world.dormant_buyer_share]
    kind = rng.choice([REGULAR, WINDOW_SHOPPER, DORMANT_BUYER], n, p=[1.0 - sum(shares), *shares])
    z0 = rng.standard_normal(n)
    # Conversion rises with engagement, but noisily: engagement alone is a weak buy signal.
    mean_p = _sigmoid(-1.5 + 0.5 * z0 + 0.6 * rng.standard_normal(n))
    propensity = rng.beta(6.0 * mean_p, 6.0 * (1.0 - mean_p))
    propensity = np.select(
        [kind == WINDOW_SHOPPER, kind == DORMANT_BUYER],
        [0.03 * propensity, 0.6 + 0.4 * propensity],
        propensity,
    )
    z = z0 + np.select([kind == WINDOW_SHOPPER, kind == DORMANT_BUYER], [1.0, -1.0], 0.0)
    # Exponential (memoryless) churn, centred so the mean stays mean_lifetime_days for z ~ N(0,1).
    lifetime = rng.exponential(world.mean_lifetime_days * np.exp(0.4 * z - 0.08), n)
    lifetime *= np.where(kind == DORMANT_BUYER, 3.0, 1.0)
    spend = 3_000.0 * np.exp(0.5 * rng.standard_normal(n))
    period = rng.integers(7, 29, n)
    phase = rng.integers(0, period)
    alive = (day - arrival).days < lifetime
    return {  # one entry per alive user; (arrival, k) = (arrival day index, rank in cohort) is the id
        "arrival": np.full(n, (arrival - world.start).days)[alive],
        "k": np.arange(n)[alive],
        "kind": kind[alive],
        "age": np.full(n, (day - arrival).days)[alive],
        "visit_p": _sigmoid(-2.2 + 1.1 * z[alive]),
        "sessions": np.minimum(0.3 * np.exp(0.7 * z[alive]), 20.0),  # mean extra sessions per visit day
        "propensity": propensity[alive],
        "spend": spend[alive],
        "period": period[alive],
        "phase": phase[alive],
    }


def _ids(*parts: tuple[str, np.ndarray, int]) -> np.ndarray:
    """Vectorised ``"".join(f"{prefix}{n:0{width}d}" for prefix, n, width in parts)``, as str objects."""
    cols = []
    for prefix, numbers, width in parts:
        numbers = np.asarray(numbers, dtype=np.int64)
        if numbers.size and numbers.max() >= 10**width:
            raise ValueError(f"id part {prefix!r} overflows {width} digits")
        cols.append(np.broadcast_to(np.frombuffer(prefix.encode(), np.uint8), (len(numbers), len(prefix))))
        cols.append((numbers[:, None] // 10 ** np.arange(width - 1, -1, -1) % 10 + ord("0")).astype(np.uint8))
    chars = np.ascontiguousarray(np.hstack(cols))
    return chars.view(f"S{chars.shape[1]}").ravel().astype(str).astype(object)


def _frame(user_id, event_ts, event_name, value, session_id, item_id) -> pd.DataFrame:
    return pd.DataFrame(
        dict(zip(COLUMNS, [user_id, event_ts, event_name, value, session_id, item_id], strict=True))
    )


def generate_day(world: SyntheticWorld, day: datetime.date, timezone: str) -> pd.DataFrame:
    """Events of local calendar day ``day`` in IANA ``timezone``, event_ts as naive UTC, sorted."""
    if day < world.start:
        none = np.array([], dtype=object)
        return _frame(none, np.array([], "datetime64[us]"), none, np.array([], float), none, none)
    day_index = (day - world.start).days
    cohorts = [_cohort(world, world.start + datetime.timedelta(a), day) for a in range(day_index + 1)]
    u = {key: np.concatenate([c[key] for c in cohorts]) for key in cohorts[0]}
    rng = np.random.default_rng([world.seed, _DAY_STREAM, day.toordinal()])

    # Who visits: every newcomer, dormant buyers on their cycle (90%), others by chance.
    on_cycle = (u["kind"] == DORMANT_BUYER) & (u["age"] % u["period"] == u["phase"])
    p = np.where(on_cycle, 0.9, np.minimum(1.0, u["visit_p"] * _traffic(world, day)))
    vis = np.flatnonzero((u["age"] == 0) | (rng.random(len(p)) < p))

    # Sessions of the visitors, each starting at a local second drawn from the hourly profile.
    n_sess = np.minimum(1 + rng.poisson(u["sessions"][vis]), 99)
    s_vis = np.repeat(np.arange(len(vis)), n_sess)  # visitor position of each session
    s_no = np.arange(len(s_vis)) - np.repeat(np.cumsum(n_sess) - n_sess, n_sess)
    s_start = rng.choice(24, len(s_vis), p=HOURLY) * 3600 + rng.integers(0, 3600, len(s_vis))

    # Views: 1 + Poisson per session, 1 s + Exp(40 s) apart, items by Zipf-like popularity.
    n_views = 1 + rng.poisson(3.0, len(s_vis))
    v_sess = np.repeat(np.arange(len(s_vis)), n_views)
    gaps = np.cumsum(1.0 + rng.exponential(40.0, len(v_sess)))
    first = np.cumsum(n_views) - n_views
    v_t = s_start[v_sess] + gaps - np.repeat(gaps[first], n_views)
    popularity = 1.0 / (np.arange(world.n_items) + 10.0)
    v_item = rng.choice(world.n_items, len(v_sess), p=popularity / popularity.sum())
    v_user = vis[s_vis[v_sess]]

    # Funnel: each event points at the view it stems from (for session, user and item).
    c_src = np.flatnonzero(rng.random(len(v_sess)) < 0.3)
    c_t = v_t[c_src] + 2.0 + rng.exponential(10.0, len(c_src))
    carted = rng.random(len(c_src)) < 0.05 + 0.8 * u["propensity"][v_user[c_src]]
    k_src, k_t = c_src[carted], c_t[carted] + 2.0 + rng.exponential(20.0, carted.sum())
    # Views are ordered by session, so carts are too: group them to get each session's first/last cart.
    k_sess, k_first = np.unique(v_sess[k_src], return_index=True)
    last_cart = np.maximum.reduceat(k_t, k_first) if len(k_t) else k_t
    buys = rng.random(len(k_sess)) < u["propensity"][vis[s_vis[k_sess]]] * _payday(world, day)
    b_src, b_t = k_src[k_first[buys]], last_cart[buys] + 5.0 + rng.exponential(60.0, buys.sum())
    b_value = np.round(u["spend"][v_user[b_src]] * rng.lognormal(0.0, 0.5, len(b_src)))

    src = np.concatenate([np.arange(len(v_sess)), c_src, k_src, b_src])
    code = np.repeat(np.arange(4), [len(v_sess), len(c_src), len(k_src), len(b_src)])
    value = np.concatenate([np.zeros(len(src) - len(b_src)), b_value])
    # Local elapsed seconds in the day (stretched to 23/25 h on DST days) -> UTC microseconds.
    # (Convert before subtracting: aware datetimes sharing a tzinfo subtract as wall-clock times.)
    tz, utc = zoneinfo.ZoneInfo(timezone), datetime.UTC
    utc0, utc1 = (
        datetime.datetime.combine(d, datetime.time(), tz).astimezone(utc).replace(tzinfo=None)
        for d in (day, day + datetime.timedelta(1))
    )
    day_seconds = int((utc1 - utc0).total_seconds())
    secs = np.minimum(np.concatenate([v_t, c_t, k_t, b_t]), 86_399).astype(np.int64) * day_seconds // 86_400
    ts = np.datetime64(utc0, "us") + secs * np.timedelta64(1_000_000, "us")

    ev_vis, ev_sess = s_vis[v_sess[src]], v_sess[src]
    # Sort by (ts, user_id): ids are zero-padded (6 + 6 digits < 2**20 each) so they sort like the numbers;
    # a stable sort keeps a view before the click made within the same second.
    order = np.argsort((secs << 40) | (u["arrival"][vis][ev_vis] << 20) | u["k"][vis][ev_vis], kind="stable")
    user_ids = _ids(("u", u["arrival"][vis], 6), ("-", u["k"][vis], 6))
    session_ids = _ids(
        ("s", u["arrival"][vis][s_vis], 6),
        ("-", u["k"][vis][s_vis], 6),
        ("-", np.full(len(s_vis), day_index), 5),
        ("-", s_no, 2),
    )
    item_ids = _ids(("i", np.arange(world.n_items), len(str(world.n_items - 1))))
    shoppers = _frame(
        user_ids[ev_vis[order]],
        ts[order],
        EVENT_NAMES[code[order]],
        value[order],
        session_ids[ev_sess[order]],
        item_ids[v_item[src[order]]],
    )
    if not world.planted_users:
        return shoppers
    planted = planted_events(world, day, np.datetime64(utc0, "us"), day_seconds)
    return pd.concat([shoppers, planted], ignore_index=True).sort_values(
        ["event_ts", "user_id"], kind="stable", ignore_index=True
    )


# Planted anomalies (``SyntheticWorld.planted_users``), one kind in three each:
#   bot   a scraper throttled to a person's volume: 8-40 views, every fifth a click, at one fixed
#         period (20-120 s), so only its machine timing gives it away;
#   rate  impossible rates: 300-1,500 views, clicks and carts a fraction of a second apart;
#   loop  a scripted purchase loop: view, cart, purchase of one item at one price, 3-10 times,
#         one loop every 1-5 minutes.
PLANTED_KINDS = ("bot", "rate", "loop")
_PLANTED_STREAM = 2


def planted_user_ids(world: SyntheticWorld) -> dict[str, list[str]]:
    """The ids of the planted users by kind: ``bot-00000``, ``rate-00001``, ``loop-00002``, ..."""
    ids: dict[str, list[str]] = {kind: [] for kind in PLANTED_KINDS}
    for i in range(world.planted_users):
        kind = PLANTED_KINDS[i % len(PLANTED_KINDS)]
        ids[kind].append(f"{kind}-{i:05d}")
    return ids


def planted_events(
    world: SyntheticWorld, day: datetime.date, utc0: np.datetime64, day_seconds: int = 86_400
) -> pd.DataFrame:
    """The planted users' events of ``day``, which starts at ``utc0`` (naive UTC) and lasts
    ``day_seconds`` (23 or 25 h on DST days); drawn from a random stream of their own."""
    rng = np.random.default_rng([world.seed, _PLANTED_STREAM, day.toordinal()])
    day_index = (day - world.start).days
    width = len(str(world.n_items - 1))
    parts = []
    for i in range(world.planted_users):
        kind = PLANTED_KINDS[i % len(PLANTED_KINDS)]
        if kind == "bot":
            period = int(rng.integers(20, 121))
            n = int(rng.integers(8, 41))
            seconds = rng.uniform(0, day_seconds - n * period - 600) + period * np.arange(n, dtype=float)
            names = np.where(np.arange(n) % 5 == 4, "click", "view")
            items = (int(rng.integers(world.n_items)) + np.arange(n)) % world.n_items
            values = np.zeros(n)
        elif kind == "rate":
            n = int(rng.integers(300, 1_501))
            gaps = 0.05 + rng.exponential(0.4, n)
            seconds = rng.uniform(0, day_seconds - gaps.sum() - 600) + np.cumsum(gaps)
            names = rng.choice(["view", "click", "cart"], n, p=[0.5, 0.4, 0.1])
            items = rng.integers(world.n_items, size=n)
            values = np.zeros(n)
        else:
            loops, period = int(rng.integers(3, 11)), int(rng.integers(60, 301))
            starts = rng.uniform(0, day_seconds - loops * period - 600) + period * np.arange(
                loops, dtype=float
            )
            seconds = (starts[:, None] + [0.0, 2.0, 4.0] + rng.uniform(0, 1, (loops, 1))).ravel()
            names = np.tile(["view", "cart", "purchase"], loops)
            n = len(seconds)
            items = np.full(n, int(rng.integers(world.n_items)))
            values = np.where(names == "purchase", 500.0 * (1 + i % 7), 0.0)
        user_id = f"{kind}-{i:05d}"
        parts.append(
            _frame(
                np.full(n, user_id, dtype=object),
                utc0 + (seconds * 1e6).astype(np.int64) * np.timedelta64(1, "us"),
                np.asarray(names, dtype=object),
                values,
                np.full(n, f"s{user_id}-{day_index:05d}", dtype=object),
                np.array([f"i{item:0{width}d}" for item in items], dtype=object),
            )
        )
    return pd.concat(parts, ignore_index=True)
