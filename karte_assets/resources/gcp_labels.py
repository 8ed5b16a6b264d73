"""Labels on Google Cloud jobs (BigQuery, Vertex AI), so that cost and runs trace back to Dagster."""

import re

_INVALID = re.compile(r"[^a-z0-9_-]")


def label(value: str) -> str:
    """``value`` as a label value: lowercase, only [a-z0-9_-], at most 63 characters."""
    return _INVALID.sub("_", value.lower())[:63]
