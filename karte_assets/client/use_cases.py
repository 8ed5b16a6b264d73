"""Which use case runs for which client: the one lookup the launcher asks (CLIENTS.md).

A run is one use case's job for one client: the run tag ``karte/client`` names the client, and the
job's assets cover exactly the clients a run names. ``lookup`` is the single place that knows the
registry; today it holds one use case (``loyalty``) and one client (``default``, the single-shop
setup configured by the ``KARTE_*`` variables). Once the per-use-case client registry exists
(``karte_assets.clients``, CLIENTS.md amendment of 2026-11-28), ``lookup`` reads a use case's
client ids from it instead of ``_REGISTRY``'s tuple.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from karte_assets.client.errors import RequestError

CLIENT_TAG = "karte/client"
CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # CLIENTS.md

# use case -> (its job, its clients)
_REGISTRY: dict[str, tuple[str, tuple[str, ...]]] = {
    "loyalty": ("loyalty_daily_job", ("default",)),
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


def lookup(use_case: str, client: str) -> Target:
    """The job that runs ``use_case`` for ``client``; an unknown one is a ``RequestError`` naming it."""
    if use_case not in _REGISTRY:
        raise RequestError(
            f"unknown use case {use_case!r}: known use cases are {', '.join(sorted(_REGISTRY))}"
        )
    job, clients = _REGISTRY[use_case]
    if not CLIENT_ID.match(client):
        raise RequestError(
            f"client {client!r} is not a client id (lowercase letters, digits, '_' and '-', at most 63)"
        )
    if client not in clients:
        raise RequestError(
            f"unknown client {client!r} for use case {use_case!r}: its clients are {', '.join(clients)}"
        )
    return Target(use_case=use_case, client=client, job=job)
