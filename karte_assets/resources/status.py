"""The status seam: where the record of every finished run (success, failure, cancel) goes."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

from dagster import ConfigurableResource


class StatusPublisher(ConfigurableResource, ABC):
    """Delivers run status records to their consumers."""

    @abstractmethod
    def publish(self, record: Mapping[str, object]) -> None:
        """Deliver one record; returns only once it is durably accepted, raises otherwise."""


class JsonLinesStatusPublisher(StatusPublisher):
    """The local default: appends one JSON object per line to a file (``$KARTE_HOME/status.jsonl``)."""

    path: str

    def publish(self, record):
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
