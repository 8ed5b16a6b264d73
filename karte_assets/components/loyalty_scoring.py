"""``karte_assets.LoyaltyScoring``: the loyalty use case for one client shop, one defs.yaml each."""

from __future__ import annotations

from typing import ClassVar

from karte_assets.clients import LOYALTY, LoyaltyClient
from karte_assets.components.instances import ClientComponent


class LoyaltyScoring(ClientComponent, LoyaltyClient):
    """Loyalty scores and coupon tiers for one client shop.

    Each instance (``karte_assets/defs/<shop>/defs.yaml``) adds ONE client to the loyalty use case's
    shared graph (``raw_events`` ... ``loyalty_scores``, job ``loyalty_daily_job``); it creates no
    assets of its own, so a thousand shops are a thousand rows per table, not a thousand graphs.
    Every attribute but ``client_id`` is optional: unset, it keeps the graph's default (the
    ``KARTE_*`` variables, the assets' config defaults). Materialise one shop's day by launching
    the job with the run tag ``karte/client: <client_id>``; without the tag a run covers every shop.
    """

    use_case: ClassVar[str] = LOYALTY
