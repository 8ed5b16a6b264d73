"""Where runs are launched: the local ``dagster dev`` or a Dagster+ deployment, chosen by its name."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from karte_assets.client.errors import RequestError

DEPLOYMENTS = ("local", "dev", "prod")
LOCAL_URL_VARIABLE = "KARTE_DAGSTER_URL"
LOCAL_URL = "http://127.0.0.1:3000"  # `make dev`
ORGANIZATION_VARIABLE = "DAGSTER_CLOUD_ORGANIZATION"
# The variables deploy/deploy-code-location.sh uses; the token is read from the environment only.
TOKEN_VARIABLE = "DAGSTER_CLOUD_API_TOKEN"  # noqa: S105 (a variable name, not a secret)
_ORGANIZATION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Endpoint:
    """A deployment's webserver: its base URL (``/graphql`` is below it) and the request headers."""

    name: str
    url: str
    headers: Mapping[str, str]

    def __repr__(self) -> str:  # the headers hold the API token
        return f"Endpoint(name={self.name!r}, url={self.url!r})"


def endpoint(deployment: str, environ: Mapping[str, str] = os.environ) -> Endpoint:
    """The endpoint of ``deployment``: ``local`` is ``$KARTE_DAGSTER_URL`` (default the address of
    ``make dev``); ``dev`` and ``prod`` are the Dagster+ deployments of those names in
    ``$DAGSTER_CLOUD_ORGANIZATION``, called with the API token in ``$DAGSTER_CLOUD_API_TOKEN``."""
    if deployment not in DEPLOYMENTS:
        raise RequestError(f"unknown deployment {deployment!r}: one of {', '.join(DEPLOYMENTS)}")
    if deployment == "local":
        url = environ.get(LOCAL_URL_VARIABLE, LOCAL_URL).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RequestError(f"{LOCAL_URL_VARIABLE}={url!r} is not an http(s) URL")
        return Endpoint(name=deployment, url=url, headers={})
    organization = environ.get(ORGANIZATION_VARIABLE, "").strip()
    token = environ.get(TOKEN_VARIABLE, "").strip()
    for variable, value in ((ORGANIZATION_VARIABLE, organization), (TOKEN_VARIABLE, token)):
        if not value:
            raise RequestError(f"deployment {deployment!r} is on Dagster+: set {variable}")
    if not _ORGANIZATION.match(organization):
        raise RequestError(f"{ORGANIZATION_VARIABLE}={organization!r} is not a Dagster+ organization name")
    # A deployment-scoped URL and a user token in the Dagster-Cloud-Api-Token header, as Dagster's
    # docs configure this client for Dagster+ (dagster-io/dagster,
    # examples/docs_snippets/docs_snippets/concepts/webserver/graphql/client_example.py, start_cloud_usage).
    return Endpoint(
        name=deployment,
        url=f"https://{organization}.dagster.cloud/{deployment}",
        headers={"Dagster-Cloud-Api-Token": token},
    )
