"""A corpus of the shapes real event exports have (karte_assets_tests/corpus/, described in its
README): every good row loads, each bad line is rejected alone with its file, line and reason."""

import datetime as dt
from pathlib import Path

import pytest

from karte_assets.event_sources import FileSource, day_events

CORPUS = Path(__file__).parent / "corpus"
DAY = dt.date(2026, 6, 10)  # in Asia/Tokyo: 2026-06-09 15:00 to 2026-06-10 15:00 UTC
NAMES = ["view", "click", "cart", "purchase"]
GOOD_OF_MALFORMED = [
    ("u1", "2026-06-10 01:00:00", "view", 0.0, None),
    ("u8", "2026-06-10 08:00:00", "view", 0.0, None),
]
BAD_OF_MALFORMED = [
    (3, "too many columns"),
    (4, "missing columns"),
    (5, "control character in user_id"),
    (6, "invalid encoding"),
    (7, "unquoted value"),
    (8, "non-numeric value"),
]

# file or glob -> (accepted rows: user_id, event_ts in UTC, event_name, value, properties; rejects: line, reason)
EXPECTED = {
    "bom_crlf.csv": (
        [
            ("u1", "2026-06-10 01:00:00", "view", 0.0, None),
            ("u2", "2026-06-10 02:00:00", "purchase", 1200.0, None),
            ("u3", "2026-06-10 03:00:00", "cart", 0.0, None),
        ],
        [],
    ),
    "semicolon.csv": (
        [
            ("u1", "2026-06-10 01:00:00", "purchase", 1200.5, None),
            ("u2", "2026-06-10 02:00:00", "view", 0.0, None),
        ],
        [],
    ),
    "tab.tsv": (
        [
            ("u1", "2026-06-10 01:00:00", "view", 0.0, '{"page":"/top, sale"}'),
            ("u2", "2026-06-10 02:00:00", "click", 0.0, '{"page":"/item"}'),
        ],
        [],
    ),
    "quoted_newlines.csv": (
        [
            ("u1", "2026-06-10 01:00:00", "view", 0.0, '{"note":"first line\\nsecond line"}'),
            ("u2", "2026-06-10 02:00:00", "view", 0.0, '{"note":"a, b and \\"quoted\\""}'),
            ("u3", "2026-06-10 03:00:00", "view", 0.0, '{"note":"plain"}'),
        ],
        [],
    ),
    "japanese.csv": (
        [
            ("u1", "2026-06-10 01:00:00", "purchase", 3980.0, '{"商品名":"抹茶ラテ（大）"}'),
            ("u2", "2026-06-10 02:00:00", "view", 0.0, '{"商品名":"ほうじ茶"}'),
        ],
        [],
    ),
    "integer_ids.csv": (
        [
            ("1001", "2026-06-10 01:00:00", "view", 0.0, None),
            ("1002", "2026-06-10 02:00:00", "view", 0.0, None),
        ],
        [],
    ),
    # Epoch seconds, epoch milliseconds, and seconds of the next local day (not this day's).
    "epoch.csv": (
        [("u1", "2026-06-10 01:00:00", "view", 0.0, None), ("u2", "2026-06-10 02:00:00", "view", 0.0, None)],
        [],
    ),
    # A date alone is local midnight (Tokyo); the two identical orders are both kept.
    "date_only.csv": (
        [
            ("c1", "2026-06-09 15:00:00", "purchase", 500.0, None),
            ("c1", "2026-06-09 15:00:00", "purchase", 500.0, None),
        ],
        [],
    ),
    "offsets_and_naive.csv": (
        [
            ("u1", "2026-06-10 00:00:00", "view", 0.0, None),
            ("u2", "2026-06-10 02:00:00", "view", 0.0, None),
            ("u3", "2026-06-10 03:00:00", "view", 0.0, None),
            ("u4", "2026-06-10 14:30:00", "view", 0.0, None),
        ],
        [],
    ),
    "empty.csv": ([], []),
    "header_only.csv": ([], []),
    # Columns in another order, an integer id, an extra column, and an empty file.
    "glob_csv/*.csv": (
        [
            ("42", "2026-06-10 02:00:00", "purchase", 990.0, '{"campaign":"summer"}'),
            ("u1", "2026-06-10 01:00:00", "view", 0.0, '{"campaign":null}'),
        ],
        [],
    ),
    "malformed.csv": (GOOD_OF_MALFORMED, BAD_OF_MALFORMED),
    "malformed.csv.gz": (GOOD_OF_MALFORMED, BAD_OF_MALFORMED),
    "integer_ids_epoch_ms.parquet": (
        [
            ("1001", "2026-06-10 01:00:00", "view", 0.0, None),
            ("1002", "2026-06-10 02:00:00", "purchase", 2500.0, None),
        ],
        [],
    ),
    # An integer id and a timestamp column in one file, a text id and an offset timestamp text in the other.
    "glob_parquet/*.parquet": (
        [
            ("7", "2026-06-10 01:00:00", "view", 0.0, '{"device":null}'),
            ("u8", "2026-06-10 02:00:00", "click", 0.0, '{"device":"スマホ"}'),
        ],
        [],
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_good_row_loads_and_each_bad_line_is_rejected_alone_with_file_line_and_reason(name, tmp_path):
    source = str(CORPUS / name)
    with day_events(FileSource(source), DAY, "Asia/Tokyo", NAMES, tmp_path / "spill") as events:
        accepted = events.accepted().read_all().to_pandas()
        rejected = events.rejected().read_all().to_pandas()
    rows = sorted(
        (row.user_id, str(row.event_ts), row.event_name, row.value, row.properties)
        for row in accepted.itertuples()
    )
    expected_rows, expected_rejects = EXPECTED[name]
    assert rows == sorted(expected_rows)
    assert list(zip(rejected["source_line"], rejected["reject_reason"], strict=True)) == expected_rejects
    assert all(Path(file).match(name) for file in rejected["source_file"])


def test_a_malformed_line_is_kept_as_it_came(tmp_path):
    lines = (CORPUS / "malformed.csv").read_bytes().split(b"\n")
    with day_events(
        FileSource(str(CORPUS / "malformed.csv")), DAY, "Asia/Tokyo", NAMES, tmp_path / "spill"
    ) as events:
        rejected = events.rejected().read_all().to_pandas().set_index("source_line")
    assert rejected.loc[3, "raw_line"] == lines[2].decode()
    assert rejected.loc[7, "raw_line"] == lines[6].decode()
    # A row read whole but with a bad value keeps its fields instead of a raw line.
    assert rejected.loc[8, ["user_id", "value"]].tolist() == ["u7", "12 yen"]
