"""karte_assets: the loyalty asset graph of many client shops (``karte_assets.definitions``).

``karte_assets.LoyaltyScoring`` is the use case's Dagster Component type. It is imported on first
use, because the training image imports ``karte_assets.training`` without Dagster installed.
"""

COMPONENT_TYPES = ("LoyaltyScoring",)


def __getattr__(name: str):
    if name in COMPONENT_TYPES:
        from karte_assets import components

        return getattr(components, name)
    raise AttributeError(f"module 'karte_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *COMPONENT_TYPES])
