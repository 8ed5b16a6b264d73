"""Labels on Google Cloud jobs (BigQuery, Vertex AI), so that cost and runs trace back to Dagster.

BigQuery's rules (https://cloud.google.com/bigquery/docs/labels-intro#requirements): at most 64
labels; keys and values at most 63 characters of lowercase letters, digits, underscores and dashes
(we leave out the international characters it also allows); a key starts with a letter and is not
empty, a value may be.
"""

import re
from collections.abc import Mapping

_INVALID = re.compile(r"[^a-z0-9_-]")
_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_LABELS = 64


def label(value: str) -> str:
    """``value`` as a label value: lowercase, only [a-z0-9_-], at most 63 characters."""
    return _INVALID.sub("_", value.lower())[:63]


def checked_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` if BigQuery accepts them as job labels, else a ValueError naming the offender."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} job labels: BigQuery allows at most {MAX_LABELS}")
    for key, value in labels.items():
        if not _KEY.fullmatch(key):
            raise ValueError(
                f"job label key {key!r}: a key is 1-63 lowercase letters, digits, _ or -, starting with a letter"
            )
        if not _VALUE.fullmatch(value):
            raise ValueError(
                f"job label {key}={value!r}: a value is at most 63 lowercase letters, digits, _ or - "
                "(gcp_labels.label() makes one of any text)"
            )
    return dict(labels)
