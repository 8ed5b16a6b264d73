"""karte_assets: the asset graphs of many client shops (``karte_assets.definitions``).

``karte_assets.LoyaltyScoring``, ``karte_assets.AnomalyDetection`` and ``karte_assets.DemandForecast``
are the use cases' Dagster Component types. They are imported on first use, because the training image imports
``karte_assets.training`` without Dagster installed.
"""

COMPONENT_TYPES = ("AnomalyDetection", "DemandForecast", "LoyaltyScoring")


def __getattr__(name: str):
    if name in COMPONENT_TYPES:
        from karte_assets import components

        return getattr(components, name)
    raise AttributeError(f"module 'karte_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *COMPONENT_TYPES])
