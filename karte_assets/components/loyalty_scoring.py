"""``karte_assets.LoyaltyScoring``: the loyalty use case for one client shop, one defs.yaml each."""

from __future__ import annotations

import re

import dagster as dg

from karte_assets.clients import LOYALTY, LoyaltyClient, checked_client_id

# The Definitions metadata key under which an instance registers its client.
CLIENT_METADATA_PREFIX = f"karte/clients/{LOYALTY}/"


class LoyaltyScoringScaffolder(dg.Scaffolder):
    """``dg scaffold defs karte_assets.LoyaltyScoring <shop>``: a defs.yaml whose client id is the
    folder's name (lowercased, other characters as ``-``), every other knob left to its default."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        client_id = re.sub(r"[^a-z0-9_-]", "-", request.target_path.name.lower())[:63]
        dg.scaffold_component(request, {"client_id": checked_client_id(client_id, "the folder name")})


@dg.scaffold_with(LoyaltyScoringScaffolder)
class LoyaltyScoring(dg.Component, dg.Resolvable, LoyaltyClient):
    """Loyalty scores and coupon tiers for one client shop.

    Each instance (``karte_assets/defs/<shop>/defs.yaml``) adds ONE client to the loyalty use case's
    shared graph (``raw_events`` ... ``loyalty_scores``, job ``loyalty_daily_job``); it creates no
    assets of its own, so a thousand shops are a thousand rows per table, not a thousand graphs.
    Every attribute but ``client_id`` is optional: unset, it keeps the graph's default (the
    ``KARTE_*`` variables, the assets' config defaults). Materialise one shop's day by launching
    the job with the run tag ``karte/client: <client_id>``; without the tag a run covers every shop.
    """

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        client = LoyaltyClient(**self.model_dump(exclude_unset=True))
        return dg.Definitions(
            metadata={
                f"{CLIENT_METADATA_PREFIX}{client.client_id}": client.model_dump_json(exclude_unset=True)
            }
        )


def clients_of(defs: dg.Definitions) -> list[LoyaltyClient]:
    """The loyalty clients that the component instances of ``defs`` registered."""
    return [
        LoyaltyClient.model_validate_json(value.value if hasattr(value, "value") else value)
        for key, value in sorted(defs.metadata.items())
        if key.startswith(CLIENT_METADATA_PREFIX)
    ]
