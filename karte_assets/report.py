"""Print the newest loyalty scores: ``python -m karte_assets.report`` (what ``make demo`` ends with)."""

import datetime as dt
import sys

import pandas as pd

from karte_assets.environments import local_resources
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings


def newest_day(warehouse: Warehouse, table: str) -> dt.date | None:
    """The newest day written of ``table``, from the partition log, or None if none is."""
    newest = warehouse.query("newest_partition", {"table_name": table})["partition_date"].iloc[0]
    return None if pd.isna(newest) else pd.Timestamp(newest).date()


def main(limit: int = 10) -> None:
    settings = current_settings()
    if not settings.warehouse_path.exists():
        sys.exit(f"no warehouse at {settings.warehouse_path}: run `make demo` first")
    warehouse = local_resources(settings)["warehouse"]
    with pd.option_context("display.width", 140, "display.max_columns", 20, "display.precision", 4):
        model = warehouse.query("model_summary")
        if model.empty:
            print("No model trained yet: scores come from the purchase-frequency baseline.\n")
        else:
            m = model.iloc[0]
            print(
                f"Model {m.model_version} (trained for {m.partition_date:%Y-%m-%d}): validation ROC AUC "
                f"{m.validation_auc:.4f} vs {m.baseline_auc:.4f} for ranking by purchases in the last 90 days "
                f"({m.train_rows:,} training rows, {m.validation_rows:,} validation rows)\n"
            )
        # The day first, from the small log: a parameter filter reads one partition of the scores.
        day = newest_day(warehouse, "loyalty_scores")
        if day is None:
            sys.exit("no scores yet: materialise loyalty_scores first")
        print(f"Most loyal users of {day}:")
        print(warehouse.query("top_scores", {"partition_date": day, "limit": limit}).to_string(index=False))
        print("\nCoupon tiers:")
        print(warehouse.query("score_summary", {"partition_date": day}).to_string(index=False))


if __name__ == "__main__":
    main()
