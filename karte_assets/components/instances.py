"""What every use-case component shares: the scaffolder and how an instance registers its client.

An instance's Definitions carry one metadata entry, ``karte/clients/<use case>/<client_id>`` -> the
client's set attributes as JSON, and nothing else; the code location reads them back with
``clients_of`` into the use cases' registries (``karte_assets.clients``).
"""

from __future__ import annotations

import re
from typing import ClassVar

import dagster as dg

from karte_assets.clients import CLIENT_TYPES, UseCaseClient, checked_client_id

PREFIX = "karte/clients/"


class ClientScaffolder(dg.Scaffolder):
    """``dg scaffold defs karte_assets.<Component> <shop>``: a defs.yaml whose client id is the
    folder's name (lowercased, other characters as ``-``), every other knob left to its default."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        client_id = re.sub(r"[^a-z0-9_-]", "-", request.target_path.name.lower())[:63]
        dg.scaffold_component(request, {"client_id": checked_client_id(client_id, "the folder name")})


def registration(use_case: str, component: UseCaseClient) -> dg.Definitions:
    """The Definitions of a component instance: its client, validated as ``use_case``'s client type."""
    client = CLIENT_TYPES[use_case](**component.model_dump(exclude_unset=True))
    return dg.Definitions(
        metadata={f"{PREFIX}{use_case}/{client.client_id}": client.model_dump_json(exclude_unset=True)}
    )


@dg.scaffold_with(ClientScaffolder)
class ClientComponent(dg.Component, dg.Resolvable):
    """A use case's Component type: mixed with that use case's client type (its attributes), an
    instance registers one client and builds no assets."""

    use_case: ClassVar[str]

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return registration(self.use_case, self)


def clients_of(defs: dg.Definitions) -> list[UseCaseClient]:
    """The clients (of every use case, each of its use case's type) that the component instances of
    ``defs`` registered."""
    clients = []
    for key, value in sorted(defs.metadata.items()):
        if key.startswith(PREFIX):
            use_case = key.removeprefix(PREFIX).split("/", 1)[0]
            clients.append(
                CLIENT_TYPES[use_case].model_validate_json(value.value if hasattr(value, "value") else value)
            )
    return clients
