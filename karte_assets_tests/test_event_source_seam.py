"""Event sources are a seam: a new kind plugs in as the event_sources resource, and a source the
warehouse cannot read is refused before anything is written."""

from dataclasses import dataclass

import pandas as pd
from dagster_gcp import BigQueryResource

from karte_assets.event_sources import BigQueryTableSource, RowSource, SourceFiles
from karte_assets.resources.bigquery_warehouse import BigQueryWarehouse
from karte_assets.resources.event_sources import EventSources
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets_tests.graph import FIRST_DAY, config_with

CRM_ROWS = (
    {"user_id": "c1", "event_ts": "2026-06-01 01:00:00", "event_name": "purchase", "value": "120"},
    {"user_id": "c2", "event_ts": "2026-06-01 02:00:00", "event_name": "view", "value": None},
    {"user_id": "c3", "event_ts": "2026-06-01 03:00:00", "event_name": "refund", "value": "5"},
)


@dataclass(frozen=True)
class CrmSource(RowSource):
    """Neither the synthetic shop nor files: rows a CRM hands over in memory."""

    rows: tuple[dict, ...]
    name: str = "crm"

    def load(self, connection, day, timezone):
        connection.register("crm_rows", pd.DataFrame(list(self.rows)))
        return SourceFiles("crm_rows", {})


class WithCrm(EventSources):
    def for_client(self, config, start):
        return CrmSource(CRM_ROWS) if config.source == "crm" else super().for_client(config, start)


def test_a_new_kind_of_source_plugs_in_as_the_resource_and_gets_the_rules_of_every_source(graph):
    graph.resources["event_sources"] = WithCrm()
    result = graph.materialize(
        FIRST_DAY,
        run_config=config_with(raw_events={"source": "crm", "max_reject_share": 0.5}),
        selection=["raw_events"],
    )
    events = graph.table("raw_events", FIRST_DAY)
    assert sorted(zip(events["user_id"], events["value"], strict=True)) == [("c1", 120.0), ("c2", 0.0)]
    rejects = graph.table("raw_event_rejects", FIRST_DAY)
    assert rejects[["user_id", "reject_reason", "source"]].values.tolist() == [
        ["c3", "unknown event_name", "crm"]
    ]
    metadata = result.asset_materializations_for_node("raw_events")[0].metadata
    assert (metadata["source"].value, metadata["rejected_rows"].value) == ("crm", 1)


def test_the_bigquery_table_source_is_read_by_the_warehouse_that_declares_the_events_table(tmp_path):
    source = BigQueryTableSource()
    duckdb = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    assert source.refusal(duckdb) == "reads KARTE_BQ_EVENTS_TABLE: it needs KARTE_ENV=dev or prod"
    bigquery = BigQueryWarehouse(
        bigquery=BigQueryResource(project="karte-proj"), dataset="karte_dev", events_table="tracking.events"
    )
    assert source.refusal(bigquery) is None
