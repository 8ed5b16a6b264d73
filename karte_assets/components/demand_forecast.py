"""``karte_assets.DemandForecast``: the demand use case for one client shop, one defs.yaml each."""

from __future__ import annotations

from typing import ClassVar

from karte_assets.clients import DEMAND, DemandClient
from karte_assets.components.instances import ClientComponent


class DemandForecast(ClientComponent, DemandClient):
    """Daily demand per product, its forecast with 80 % and 95 % intervals, and the overstocked products of one client shop.

    Each instance (``karte_assets/defs/<instance>/defs.yaml``) adds ONE client to the demand use
    case's shared graph (``daily_demand``, ``demand_model``, ``demand_forecast``,
    ``overstock_candidates``, job ``demand_daily_job``), which reads the loyalty graph's
    ``raw_events`` of the same ``client_id``; it creates no assets of its own. Every attribute but
    ``client_id`` is optional: unset, it keeps the assets' config default. Launch the job with the
    run tag ``karte/client: <client_id>`` for one shop; without the tag a run covers every shop.
    """

    use_case: ClassVar[str] = DEMAND
