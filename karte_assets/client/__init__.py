"""Launching runs from the product: a use case for a client over a day or a range, with parameter
overrides, on the local ``dagster dev`` or a Dagster+ deployment (docs/launching-runs.md).

    from karte_assets.client import Platform

    platform = Platform("prod")  # DAGSTER_CLOUD_ORGANIZATION, DAGSTER_CLOUD_API_TOKEN
    run_id = platform.launch("loyalty", "default", date(2026, 6, 1), date(2026, 6, 7),
                             overrides={"loyalty_scores.tier_a_share": 0.05})
    platform.status(run_id)  # RunReport: status and each asset's outcome
"""

from karte_assets.client.api import AssetOutcome, Platform, RunReport, run_config_for
from karte_assets.client.errors import DeploymentError, RequestError, RunNotFound

__all__ = [
    "AssetOutcome",
    "DeploymentError",
    "Platform",
    "RequestError",
    "RunNotFound",
    "RunReport",
    "run_config_for",
]
