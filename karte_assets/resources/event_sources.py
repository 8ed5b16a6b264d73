"""The ``event_sources`` resource: which EventSource (``karte_assets.event_sources``) each client reads."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

from karte_assets.event_sources import BigQueryTableSource, EventSource, FileSource, SyntheticSource
from karte_assets.settings import BIGQUERY_SOURCE, SYNTHETIC_SOURCE
from karte_assets.synthetic import SyntheticWorld

if TYPE_CHECKING:
    from karte_assets.assets.events import RawEventsConfig


class EventSources(ConfigurableResource):
    """A client's event source from its ``events_source`` setting (raw_events config ``source``):
    "synthetic", "bigquery", else a path or glob of event files. Another kind of source plugs in as a
    subclass of this resource whose ``for_client`` answers for its settings and defers the rest."""

    def for_client(self, config: RawEventsConfig, start: dt.date) -> EventSource:
        """The source of a client whose raw_events config is ``config`` and history starts on ``start``."""
        if config.source == SYNTHETIC_SOURCE:
            return SyntheticSource(
                SyntheticWorld(
                    start=start,
                    new_users_per_day=config.synthetic_new_users_per_day,
                    seed=config.synthetic_seed,
                    planted_users=config.synthetic_planted_users,
                )
            )
        if config.source == BIGQUERY_SOURCE:
            return BigQueryTableSource()
        return FileSource(config.source, csv_delimiter=config.csv_delimiter)
