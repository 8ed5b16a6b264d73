"""``karte_assets.AnomalyDetection``: the anomaly use case for one client shop, one defs.yaml each."""

from __future__ import annotations

from typing import ClassVar

from karte_assets.clients import ANOMALY, AnomalyClient
from karte_assets.components.instances import ClientComponent


class AnomalyDetection(ClientComponent, AnomalyClient):
    """Bots and cheaters of one client shop: behaviour features, anomaly scores and the exclusion audience.

    Each instance (``karte_assets/defs/<instance>/defs.yaml``) adds ONE client to the anomaly use
    case's shared graph (``user_behaviour_features``, ``user_anomaly_scores``,
    ``anomaly_exclusion_audience``, job ``anomaly_daily_job``), which reads the loyalty graph's
    ``raw_events`` of the same ``client_id``; it creates no assets of its own. Every attribute but
    ``client_id`` is optional: unset, it keeps the assets' config default. Launch the job with the
    run tag ``karte/client: <client_id>`` for one shop; without the tag a run covers every shop.
    """

    use_case: ClassVar[str] = ANOMALY
