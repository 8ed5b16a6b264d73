"""The code location: one shared graph per use case, its automation, and resources for the environment.

The clients come from ``karte_assets/defs/<instance>/defs.yaml`` (components
``karte_assets.LoyaltyScoring``, ``karte_assets.AnomalyDetection``, ``karte_assets.DemandForecast``):
each instance registers one client into its use case's registry (resources ``loyalty_clients``,
``anomaly_clients``, ``demand_clients``), never assets of its own.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from dagster import (
    BetaWarning,
    ComponentTree,
    Definitions,
    PreviewWarning,
    SupersessionWarning,
    in_process_executor,
)

from karte_assets.assets.activity import user_daily_activity
from karte_assets.assets.anomaly import ANOMALY_ASSETS, anomaly_daily_job
from karte_assets.assets.demand import DEMAND_ASSETS
from karte_assets.assets.events import raw_events
from karte_assets.assets.features import user_features
from karte_assets.assets.profile import user_profile
from karte_assets.assets.scores import loyalty_scores
from karte_assets.assets.training import loyalty_model
from karte_assets.assets.training_set import loyalty_training_set
from karte_assets.automation.schedules import daily_refresh_schedule, demand_daily_job, loyalty_daily_job
from karte_assets.automation.sensors import run_status_publisher
from karte_assets.components.instances import clients_of
from karte_assets.environments import local_resources, reporting_resources, resources_for
from karte_assets.presets import PRESET_JOBS
from karte_assets.settings import current_settings

__all__ = ["ASSETS", "defs", "local_resources", "reporting_resources", "resources_for"]

ASSETS = [
    raw_events,
    user_daily_activity,
    user_profile,
    user_features,
    loyalty_training_set,
    loyalty_model,
    loyalty_scores,
]


def load_instances(path_within_project: Path) -> Definitions:
    """``load_from_defs_folder``, in time linear in the number of component instances.

    Dagster 1.13 finds each instance's declaration by walking the whole declaration tree
    (``ComponentTree._load_component_at_loc`` -> ``_component_decl_tree``), quadratic in the
    instances: seconds of load at 1,000 shops (BENCHMARKS.md). One walk fills the tree's cache of
    declarations first; the loading itself is dagster's.
    """
    tree = ComponentTree.for_project(path_within_project)
    root = tree.find_root_decl()
    for loc, decl in root.iterate_loc_component_decl_pairs():
        if decl is not root:  # the root is rebuilt per call (it lists app-managed components)
            tree.state_tracker.set_cache_data(loc, component_decl=decl)
    with warnings.catch_warnings():  # as load_from_defs_folder: its own preview and beta functions
        for category in (PreviewWarning, BetaWarning, SupersessionWarning):
            warnings.simplefilter("ignore", category)
        return tree.build_defs()


def code_location() -> Definitions:
    """The shared graph, with the clients that the defs folder's component instances register
    (their Definitions hold nothing but that: see DESIGN.md)."""
    instances = load_instances(Path(__file__).parent)
    return Definitions.merge(
        instances,
        Definitions(
            assets=[*ASSETS, *ANOMALY_ASSETS, *DEMAND_ASSETS],
            jobs=[loyalty_daily_job, anomaly_daily_job, demand_daily_job, *PRESET_JOBS],
            schedules=[daily_refresh_schedule],
            sensors=[run_status_publisher],
            resources=resources_for(current_settings(), clients_of(instances)),
            # The work happens in the warehouse and the trainer; one process per run keeps the steps of
            # a long backfill from paying a process start each, and serialises them on the DuckDB file.
            executor=in_process_executor,
        ),
    )


defs = code_location()
