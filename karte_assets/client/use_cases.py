"""Which use case runs for which client: the one lookup the launcher asks (CLIENTS.md).

A run is one use case's job for one client: the run tag ``karte/client`` (``CLIENT_TAG``) names the
client, and the job's assets cover exactly the clients a run names. The clients of a use case are
its registry's (``karte_assets.clients``): ``default`` (the single-shop setup configured by the
``KARTE_*`` variables) and one per ``karte_assets/defs/<instance>/defs.yaml``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from karte_assets.client.errors import RequestError
from karte_assets.clients import ANOMALY, CLIENT_ID, CLIENT_TAG, DEMAND, LOYALTY, registered_clients
from karte_assets.settings import current_settings

__all__ = ["CLIENT_TAG", "Target", "lookup"]

# use case -> its job
JOBS: dict[str, str] = {
    LOYALTY: "loyalty_daily_job",
    ANOMALY: "anomaly_daily_job",
    DEMAND: "demand_daily_job",
}


@dataclass(frozen=True)
class Target:
    """One use case for one client: the job to launch and the tags that scope the run."""

    use_case: str
    client: str
    job: str

    @property
    def tags(self) -> dict[str, str]:
        return {CLIENT_TAG: self.client}


@functools.cache
def _client_ids(use_case: str) -> tuple[str, ...]:
    # Read once per process: the defs folder changes with a deployment, not between requests.
    registry = registered_clients(current_settings(), use_case)
    return tuple(registry.ids())


def lookup(use_case: str, client: str) -> Target:
    """The job that runs ``use_case`` for ``client``; an unknown one is a ``RequestError`` naming it."""
    if use_case not in JOBS:
        raise RequestError(f"unknown use case {use_case!r}: known use cases are {', '.join(sorted(JOBS))}")
    if not CLIENT_ID.match(client):
        raise RequestError(
            f"client {client!r} is not a client id (lowercase letters, digits, '_' and '-', at most 63)"
        )
    clients = _client_ids(use_case)
    if client not in clients:
        raise RequestError(
            f"unknown client {client!r} for use case {use_case!r}: its clients are {', '.join(clients)}"
        )
    return Target(use_case=use_case, client=client, job=JOBS[use_case])
