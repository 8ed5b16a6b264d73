"""Run the real asset graph on small synthetic data with the real local resources."""

import datetime as dt
from pathlib import Path

import pandas as pd
from dagster import DagsterInstance, ExecuteInProcessResult, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from karte_assets.definitions import ASSETS, defs, local_resources
from karte_assets.settings import load_settings

# Small and quick: few users, and a label horizon short enough that a model trains on day 15.
FAST_CONFIG = {
    "ops": {
        "raw_events": {"config": {"synthetic_new_users_per_day": 40.0}},
        "loyalty_training_set": {
            "config": {"horizon_days": 7, "snapshot_every_days": 7, "min_history_days": 0, "max_snapshots": 4}
        },
        "loyalty_model": {"config": {"num_boost_round": 60, "min_data_in_leaf": 10}},
    }
}
FIRST_DAY = dt.date(2026, 6, 1)


def config_with(**ops: dict) -> dict:
    """FAST_CONFIG with some assets' config replaced or merged."""
    merged = {name: {"config": dict(op["config"])} for name, op in FAST_CONFIG["ops"].items()}
    for name, config in ops.items():
        merged.setdefault(name, {"config": {}})["config"].update(config)
    return {"ops": merged}


class LocalGraph:
    """A $KARTE_HOME with its own warehouse, model store, status file and Dagster instance."""

    def __init__(self, home: Path):
        self.home = home
        settings = load_settings({"KARTE_HOME": str(home)})
        self.resources = local_resources(settings)
        self.warehouse = self.resources["warehouse"]
        self.instance = DagsterInstance.ephemeral()

    def materialize(
        self,
        start: dt.date,
        end: dt.date | None = None,
        run_config: dict | None = None,
        raise_on_error: bool = True,
        selection: list[str] | None = None,
    ) -> ExecuteInProcessResult:
        """One run of the loyalty graph (or of ``selection``, any of the code location's assets)
        over [start, end], as a single-run backfill does it."""
        tags = {
            ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: (end or start).isoformat(),
        }
        run_config = run_config or FAST_CONFIG
        if selection:
            # Run config may only name the selected assets.
            run_config = {"ops": {k: v for k, v in run_config["ops"].items() if k in selection}}
        return materialize(
            ASSETS if selection is None else defs.assets,
            resources=self.resources,
            run_config=run_config,
            instance=self.instance,
            tags=tags,
            raise_on_error=raise_on_error,
            selection=selection,
        )

    def table(self, name: str, day: dt.date | None = None, drop: tuple[str, ...] = ()) -> pd.DataFrame:
        """A table (or one day of it) in a canonical order, for comparisons."""
        with self.warehouse.connect() as connection:
            frame = connection.execute(
                f"SELECT * FROM {name} WHERE $day IS NULL OR partition_date = $day",
                {"day": day},
            ).df()
        frame = frame.drop(columns=list(drop))
        return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def failure_message(result: ExecuteInProcessResult) -> str:
    """The first failed step's error with its causes: Dagster wraps what the asset raised."""
    error = next(event for event in result.all_events if event.is_step_failure).step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)
