"""Presets for common analyst runs: jobs whose launchpad opens with the run's config filled in.

Dagster 1.x has no run config presets any more; a job defined with ``config=`` is their successor:
it is listed under Jobs, and its launchpad starts from that config, which can still be edited.
Each preset rewrites the partitions it selects, like any run, until the day is run again.
"""

from dagster import AssetSelection, define_asset_job

from karte_assets.assets.scores import loyalty_scores
from karte_assets.assets.training import loyalty_model
from karte_assets.assets.training_set import loyalty_training_set


def overrides(asset: str, **config: object) -> dict:
    """Run config that sets only ``config``: every other knob keeps its current default."""
    return {"ops": {asset: {"config": config}}}


small_coupon_budget_job = define_asset_job(
    "preset_small_coupon_budget",
    selection=AssetSelection.assets(loyalty_scores),
    config=overrides("loyalty_scores", tier_a_share=0.05, tier_b_share=0.10),
    description="Re-tier the day's audience for a small coupon budget: tier A 5%, tier B the next 10%. "
    "Scores only: uses the model already trained for the day.",
)

quick_model_job = define_asset_job(
    "preset_quick_model",
    selection=AssetSelection.assets(loyalty_model, loyalty_scores),
    config=overrides("loyalty_model", learning_rate=0.1, num_boost_round=150, retrain_now=True),
    description="Retrain and rescore with a fast LightGBM setting (learning rate 0.1, at most 150 rounds): "
    "a quick look at what a parameter change does to the validation AUC and the charts.",
)

two_week_horizon_job = define_asset_job(
    "preset_two_week_horizon",
    selection=AssetSelection.assets(loyalty_training_set, loyalty_model, loyalty_scores),
    config={
        "ops": {
            **overrides("loyalty_training_set", horizon_days=14)["ops"],
            **overrides("loyalty_model", retrain_now=True)["ops"],
        }
    },
    description="Loyalty over 14 days instead of 28, for a two-week campaign: training set, model and "
    "scores (the score becomes the chance to buy within 14 days).",
)

retrain_now_job = define_asset_job(
    "preset_retrain_now",
    selection=AssetSelection.assets(loyalty_model, loyalty_scores),
    config=overrides("loyalty_model", retrain_now=True),
    description="Train a model for the selected days now, whatever the retrain cadence "
    "(loyalty_model.retrain_every_days), and rescore with it if it is accepted.",
)

PRESET_JOBS = [small_coupon_budget_job, quick_model_job, two_week_horizon_job, retrain_now_job]
