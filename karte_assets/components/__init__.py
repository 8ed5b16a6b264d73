"""The use-case templates as Dagster Component types (``karte_assets.LoyaltyScoring``, ...)."""

from karte_assets.components.anomaly_detection import AnomalyDetection
from karte_assets.components.demand_forecast import DemandForecast
from karte_assets.components.loyalty_scoring import LoyaltyScoring

__all__ = ["AnomalyDetection", "DemandForecast", "LoyaltyScoring"]
