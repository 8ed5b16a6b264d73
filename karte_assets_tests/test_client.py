"""Launching runs from the product (karte_assets.client) against a real dagster-webserver on loopback.

One webserver for the module, with a fresh instance whose runs the webserver launches itself; the
runs it executes are the smallest that prove the point (raw_events alone, or a run cancelled at
its start), one at a time because they share the DuckDB file. What was or was not launched is read
from the instance's own run storage, not from the client under test.
"""

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from karte_assets.client import Platform, RequestError, RunNotFound, run_config_for
from karte_assets.client.__main__ import main
from karte_assets.client.deployments import endpoint
from karte_assets.settings import REPO_ROOT
from karte_assets_tests.webserver import free_port, webserver

RUN_TIMEOUT_S = 240  # a run's worker loads the code location first: slow on a loaded 2-core machine
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """(the webserver's URL, its instance) for the module."""
    home = tmp_path_factory.mktemp("client")
    with webserver(home, home / "webserver.log", {"KARTE_SYNTHETIC_USERS_PER_DAY": "20"}) as url:
        with DagsterInstance.from_config(str(home / "dagster")) as instance:
            yield url, instance


@pytest.fixture
def platform(deployment) -> Platform:
    return Platform("local", {"KARTE_DAGSTER_URL": deployment[0]})


@pytest.fixture
def instance(deployment) -> DagsterInstance:
    return deployment[1]


@pytest.fixture
def cli(deployment, monkeypatch, capsys):
    """The CLI in this process, pointed at the webserver: (exit code, stdout, stderr)."""
    monkeypatch.setenv("KARTE_DAGSTER_URL", deployment[0])

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def run_ids(instance: DagsterInstance) -> set[str]:
    return {run.run_id for run in instance.get_runs()}


LAUNCH = ("launch", "--use-case", "loyalty", "--client", "default")


# -- without a server ------------------------------------------------------------------------------


def test_overrides_become_run_config_for_their_assets_only():
    assert run_config_for({"loyalty_scores.tier_a_share": 0.05, "loyalty_model.num_leaves": 15}) == {
        "ops": {
            "loyalty_scores": {"config": {"tier_a_share": 0.05}},
            "loyalty_model": {"config": {"num_leaves": 15}},
        }
    }
    assert run_config_for({}) == {}
    with pytest.raises(RequestError, match="'tier_a_share' is not <asset>.<parameter>"):
        run_config_for({"tier_a_share": 0.05})


def test_the_deployment_is_chosen_by_its_name_and_dagster_plus_needs_its_token():
    assert endpoint("local", {}).url == "http://127.0.0.1:3000"
    prod = endpoint("prod", {"DAGSTER_CLOUD_ORGANIZATION": "karte", "DAGSTER_CLOUD_API_TOKEN": "user:secret"})
    assert prod.url == "https://karte.dagster.cloud/prod"
    assert prod.headers == {"Dagster-Cloud-Api-Token": "user:secret"}
    assert "secret" not in repr(prod)
    with pytest.raises(RequestError, match="set DAGSTER_CLOUD_API_TOKEN"):
        endpoint("dev", {"DAGSTER_CLOUD_ORGANIZATION": "karte"})
    with pytest.raises(RequestError, match="unknown deployment 'staging'"):
        endpoint("staging", {})


def test_the_cli_refuses_an_unknown_client_use_case_or_an_inverted_range_with_exit_code_2(
    capsys, monkeypatch
):
    # Nothing listens there: each refusal happens before any call.
    monkeypatch.setenv("KARTE_DAGSTER_URL", f"http://127.0.0.1:{free_port()}")
    cases = {
        (
            "launch",
            "--use-case",
            "loyalty",
            "--client",
            "acme",
            "--from",
            "2026-06-01",
        ): "unknown client 'acme'",
        (
            "launch",
            "--use-case",
            "churn",
            "--client",
            "default",
            "--from",
            "2026-06-01",
        ): "unknown use case 'churn'",
        (*LAUNCH, "--from", "2026-06-07", "--to", "2026-06-01"): "2026-06-07...2026-06-01 is inverted",
        (*LAUNCH, "--from", "2026-06-01", "--deployment", "prod"): "set DAGSTER_CLOUD_ORGANIZATION",
        # The Vertex trainer's machine is a run tag (resources/vertex_trainer.py), checked here first.
        (*LAUNCH, "--from", "2026-06-01", "--worker-pool", '{"machine_typ": "n1-standard-8"}'): (
            "unknown worker pool fields ['machine_typ']"
        ),
        (*LAUNCH, "--from", "2026-06-01", "--worker-pool", '{"accelerator_count": -1}'): "accelerator_count",
    }
    for argv, message in cases.items():
        assert main(list(argv)) == 2, argv
        assert message in capsys.readouterr().err
    assert main([*LAUNCH, "--from", "2026-06-01"]) == 3  # and an unreachable deployment is 3
    assert "local (http://127.0.0.1:" in capsys.readouterr().err


# -- against the webserver -------------------------------------------------------------------------


def test_a_bad_override_is_refused_naming_the_parameter_and_nothing_is_launched(platform, instance, cli):
    before = run_ids(instance)
    refusals = {
        # Dagster's config schema, checked by the deployment as the launchpad checks it.
        "loyalty_scores.tier_a_sahre": (
            0.05,
            'parameter loyalty_scores.tier_a_sahre: Received unexpected config entry "tier_a_sahre"',
        ),
        "loyalty_scores.tier_b_share": ("many", "parameter loyalty_scores.tier_b_share: Invalid scalar"),
        "loyalty_scorez.tier_a_share": (
            0.05,
            "parameter loyalty_scorez.tier_a_share: no asset 'loyalty_scorez'",
        ),
        # The Config class's own rule (0 <= share <= 1), which the schema cannot express.
        "loyalty_scores.tier_a_share": (1.5, "tier_a_share\n  Input should be less than or equal to 1"),
    }
    for name, (value, message) in refusals.items():
        with pytest.raises(RequestError) as refused:
            platform.launch("loyalty", "default", dt.date(2026, 6, 1), overrides={name: value})
        assert message in str(refused.value), name
    # A parameter of an asset the run does not execute is refused too: Dagster would accept it.
    with pytest.raises(RequestError, match="parameter loyalty_scores.tier_a_share: the run does not execute"):
        platform.launch(
            "loyalty",
            "default",
            dt.date(2026, 6, 1),
            overrides={"loyalty_scores.tier_a_share": 0.05},
            assets=["raw_events"],
        )
    with pytest.raises(RequestError, match="2026-05-31 is not a day of loyalty_daily_job on local"):
        platform.launch("loyalty", "default", dt.date(2026, 5, 31))
    code, out, err = cli(*LAUNCH, "--from", "2026-06-01", "--set", "loyalty_scores.tier_a_sahre=0.05")
    assert (code, out) == (2, "")
    assert "loyalty_scores.tier_a_sahre" in err
    assert run_ids(instance) == before


def test_a_day_launches_one_run_for_the_client_with_its_overrides(platform, instance):
    run_id = platform.launch(
        "loyalty",
        "default",
        dt.date(2026, 6, 4),
        overrides={"raw_events.synthetic_seed": 7},
        assets=["raw_events"],
        worker_pool={"machine_type": "g2-standard-8", "accelerator_count": 1},
    )
    run = instance.get_run_by_id(run_id)
    assert run.tags["dagster/partition"] == "2026-06-04"
    assert run.tags["karte/client"] == "default"
    assert json.loads(run.tags["karte/worker_pool"]) == {
        "machine_type": "g2-standard-8",
        "accelerator_count": 1,
    }
    assert run.run_config == {"ops": {"raw_events": {"config": {"synthetic_seed": 7}}}}
    report = platform.wait(run_id, RUN_TIMEOUT_S)
    assert report.status == "SUCCESS"
    assert report.partitions == {"start": "2026-06-04", "end": "2026-06-04"}
    assert [(a.asset, a.outcome, a.partitions) for a in report.assets] == [
        ("raw_events", "materialized", ["2026-06-04"])
    ]


def test_the_cli_launches_a_range_as_one_run_and_prints_its_id(deployment, instance, cli):
    before = run_ids(instance)
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "karte_assets.client",
            *LAUNCH,
            "--from",
            "2026-06-01",
            "--to",
            "2026-06-03",
            "--asset",
            "raw_events",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "KARTE_DAGSTER_URL": deployment[0]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert launched.returncode == 0, launched.stderr
    run_id = launched.stdout.strip()
    assert run_ids(instance) - before == {run_id}
    run = instance.get_run_by_id(run_id)
    assert [run.tags[tag] for tag in RANGE_TAGS] == ["2026-06-01", "2026-06-03"]
    code, out, _ = cli("status", run_id, "--wait", str(RUN_TIMEOUT_S))
    report = json.loads(out)
    assert (code, report["status"]) == (0, "SUCCESS")
    assert report["assets"] == [
        {
            "asset": "raw_events",
            "outcome": "materialized",
            "partitions": ["2026-06-01", "2026-06-02", "2026-06-03"],
        }
    ]
    assert run_ids(instance) - before == {run_id}  # the range stayed one run
    assert cli("cancel", run_id)[0] == 2  # it has ended: nothing to cancel


def test_a_run_is_cancelled_and_its_status_says_so(platform, instance, cli):
    run_id = platform.launch("loyalty", "default", dt.date(2026, 6, 1), dt.date(2026, 6, 30))
    code, out, _ = cli("status", run_id)
    assert code == 5 and json.loads(out)["status"] in ("STARTING", "STARTED")
    platform.cancel(run_id)
    report = platform.wait(run_id, RUN_TIMEOUT_S)
    assert report.status == "CANCELED"
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.CANCELED
    outcomes = {a.asset: a.outcome for a in report.assets}
    assert outcomes["loyalty_scores"] == "not_materialized"
    assert len(outcomes) == 7
    assert cli("status", run_id)[0] == 1


def test_an_unknown_run_id_is_exit_code_4(platform, cli):
    with pytest.raises(RunNotFound):
        platform.status("00000000-0000-0000-0000-000000000000")
    assert cli("status", "00000000-0000-0000-0000-000000000000")[0] == 4
