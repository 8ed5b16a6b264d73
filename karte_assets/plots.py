"""Small charts for the metadata of a materialisation, rendered inline by the Dagster UI.

Each ``*_figure`` function takes plain data and returns a matplotlib Figure (so tests can read back
what was drawn); ``chart_metadata`` renders them as PNG images inside Markdown metadata. Figures
are built without pyplot: no global state, no GUI backend, safe in any thread. matplotlib is imported
by the first figure, not with the assets that use this module (seconds off the code location's load).
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from dagster import MetadataValue

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# 600 x 350 px: readable in the UI's Markdown dialog, a few tens of kB as a data URI.
SIZE_INCHES = (6.0, 3.5)
DPI = 100
MODEL_COLOR, BASELINE_COLOR, NEUTRAL_COLOR = "#1f77b4", "#ff7f0e", "#8c8c8c"
TIER_COLORS = {"A": "#2ca02c", "B": "#9467bd"}


def new_figure(columns: int = 1) -> tuple[Figure, list]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    for ax in axes:
        ax.tick_params(labelsize=8)
    return figure, list(axes)


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def image_markdown(png_bytes: bytes, title: str) -> MetadataValue:
    """A PNG as Markdown metadata with a data URI: the UI shows it under "Show Markdown"."""
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png_bytes).decode()})")


def chart_metadata(
    log: logging.Logger, charts: Mapping[str, Callable[[], Figure]]
) -> dict[str, MetadataValue]:
    """Each chart drawn and rendered as one metadata entry.

    A chart is a nice-to-have: one that fails is left out with a warning in the run log rather
    than failing a materialisation whose data is already written.
    """
    entries: dict[str, MetadataValue] = {}
    for name, draw in charts.items():
        try:
            entries[name] = image_markdown(png(draw()), name)
        except Exception:
            log.warning(f"chart {name!r} left out of the metadata: drawing it failed", exc_info=True)
    return entries


def event_volume_figure(counts: pd.DataFrame, day: object) -> Figure:
    """Horizontal bars of events per event type (columns event_name, events, users)."""
    figure, (ax,) = new_figure()
    ordered = counts.sort_values("events")
    bars = ax.barh(ordered["event_name"].astype(str), ordered["events"], color=MODEL_COLOR)
    ax.bar_label(
        bars,
        labels=[f"{e:,} ({u:,} users)" for e, u in zip(ordered["events"], ordered["users"], strict=True)],
        fontsize=8,
        padding=3,
    )
    ax.set_xlim(0, max(1, int(ordered["events"].max()) if len(ordered) else 0) * 1.35)
    ax.set_xlabel("events", fontsize=8)
    ax.set_title(f"Events on {day} by type", fontsize=10)
    return figure


def lift(gain: Sequence[float]) -> np.ndarray:
    """Lift per slice of a gain curve: its share of the buyers over its share of the users."""
    shares = np.diff(np.asarray(gain, dtype=float))
    return shares * len(shares)


def gain_lift_figure(summary: Mapping[str, object]) -> Figure:
    """Cumulative gain (left) and lift per decile (right) of the model and the baseline ranking."""
    gain = summary["gain"]
    figure, (gain_ax, lift_ax) = new_figure(columns=2)
    targeted = np.linspace(0, 1, len(gain["model"]))
    names = {"model": "model", "baseline": f"baseline ({summary['baseline']})"}
    gain_ax.plot(targeted, targeted, color=NEUTRAL_COLOR, linestyle=":", label="random")
    for key, color in (("model", MODEL_COLOR), ("baseline", BASELINE_COLOR)):
        gain_ax.plot(targeted, gain[key], color=color, marker="o", markersize=3, label=names[key])
    gain_ax.set(xlim=(0, 1), ylim=(0, 1.02))
    gain_ax.set_xlabel("share of users targeted, best first", fontsize=8)
    gain_ax.set_ylabel("share of buyers reached", fontsize=8)
    gain_ax.set_title("Cumulative gain", fontsize=10)
    gain_ax.legend(fontsize=7, loc="lower right")

    deciles = np.arange(1, len(gain["model"]))
    width = 0.4
    for offset, (key, color) in zip(
        (-width / 2, width / 2), (("model", MODEL_COLOR), ("baseline", BASELINE_COLOR)), strict=True
    ):
        lift_ax.bar(deciles + offset, lift(gain[key]), width, color=color, label=names[key])
    lift_ax.axhline(1, color=NEUTRAL_COLOR, linestyle=":")
    lift_ax.set_xticks(deciles)
    lift_ax.set_xlabel("score decile (1 = most loyal)", fontsize=8)
    lift_ax.set_ylabel("buy rate / average", fontsize=8)
    lift_ax.set_title(f"Lift (average buy rate {summary['positive_rate']:.1%})", fontsize=10)
    return figure


def calibration_figure(calibration: Mapping[str, Sequence[float]]) -> Figure:
    """Mean predicted probability against the observed buy rate, per equal-count bin."""
    figure, (ax,) = new_figure()
    top = max(max(calibration["predicted"]), max(calibration["observed"]), 0.01) * 1.05
    ax.plot([0, top], [0, top], color=NEUTRAL_COLOR, linestyle=":", label="perfectly calibrated")
    ax.plot(calibration["predicted"], calibration["observed"], color=MODEL_COLOR, marker="o", label="model")
    ax.set(xlim=(0, top), ylim=(0, top))
    ax.set_xlabel("mean predicted probability of buying", fontsize=8)
    ax.set_ylabel("observed buy rate", fontsize=8)
    users = sum(calibration["users"])
    ax.set_title(
        f"Calibration on the validation slice ({len(calibration['users'])} bins, {users:,} users)",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="upper left")
    return figure


def feature_importance_figure(importance: Mapping[str, float], top: int = 15) -> Figure:
    """The ``top`` features by share of total gain."""
    figure, (ax,) = new_figure()
    total = sum(importance.values()) or 1.0
    ranked = sorted(importance.items(), key=lambda item: item[1], reverse=True)[:top][::-1]
    ax.barh([name for name, _ in ranked], [100 * gain / total for _, gain in ranked], color=MODEL_COLOR)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("share of total gain (%)", fontsize=8)
    ax.set_title(f"Feature importance (top {len(ranked)} of {len(importance)})", fontsize=10)
    return figure


def score_distribution_figure(
    users_per_bin: Sequence[int], cutoffs: Mapping[str, float], tier_sizes: Mapping[str, int], day: object
) -> Figure:
    """Users per score bin on [0, 1], with a line at each tier's lowest score and the tier sizes."""
    figure, (ax,) = new_figure()
    edges = np.linspace(0, 1, len(users_per_bin) + 1)
    ax.bar(
        edges[:-1], users_per_bin, width=np.diff(edges), align="edge", color=NEUTRAL_COLOR, edgecolor="white"
    )
    for tier, cutoff in cutoffs.items():
        label = f"tier {tier}: {tier_sizes.get(tier, 0):,} users, lowest score {cutoff:.3f}"
        ax.axvline(cutoff, color=TIER_COLORS.get(tier, MODEL_COLOR), linestyle="--", label=label)
    others = sum(size for tier, size in tier_sizes.items() if tier not in cutoffs)
    ax.plot([], [], " ", label=f"no coupon: {others:,} users")
    ax.set_xlim(0, 1)
    ax.set_xlabel("loyalty score", fontsize=8)
    ax.set_ylabel("users", fontsize=8)
    ax.set_title(f"Score distribution on {day}", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return figure


def score_change_figure(
    today: Sequence[int], previous: Sequence[int] | None, day: object, previous_day: object
) -> Figure:
    """Share of users per score bin on ``day`` against ``previous_day`` (None: it has no scores)."""
    figure, (ax,) = new_figure()
    edges = np.linspace(0, 1, len(today) + 1)
    series = [(today, f"{day}: {sum(today):,} users", MODEL_COLOR, "-")]
    if previous is not None:
        series.insert(0, (previous, f"{previous_day}: {sum(previous):,} users", NEUTRAL_COLOR, "--"))
    for counts, label, color, style in series:
        shares = 100 * np.asarray(counts, dtype=float) / max(1, sum(counts))
        ax.stairs(shares, edges, color=color, linestyle=style, linewidth=1.5, label=label)
    ax.set_xlim(0, 1)
    ax.set_xlabel("loyalty score", fontsize=8)
    ax.set_ylabel("share of users (%)", fontsize=8)
    ax.set_title(
        "Score distribution against the previous day"
        if previous is not None
        else f"Score distribution (no scores for the previous day, {previous_day})",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="best")
    return figure
