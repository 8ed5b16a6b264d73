"""The use-case templates as Dagster Component types (``karte_assets.LoyaltyScoring``, ...)."""

from karte_assets.components.loyalty_scoring import LoyaltyScoring

__all__ = ["LoyaltyScoring"]
