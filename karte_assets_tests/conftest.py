"""Shared fixtures: the real local resources in a temporary $KARTE_HOME, and a graph runner."""

import os
from collections.abc import Iterator

# The asset definitions read the environment once at import; pin it so that a developer's own
# KARTE_* variables cannot change what the tests see.
os.environ.update(
    KARTE_ENV="local",
    KARTE_PARTITIONS_START="2026-06-01",
    KARTE_TIMEZONE="Asia/Tokyo",
    KARTE_EVENTS_SOURCE="synthetic",
)

import pytest  # noqa: E402

from karte_assets_tests.googlesql import Analyzer, GoogleSQLServer, NotInstalled  # noqa: E402
from karte_assets_tests.graph import LocalGraph  # noqa: E402


@pytest.fixture
def graph(tmp_path) -> LocalGraph:
    return LocalGraph(tmp_path / "karte")


@pytest.fixture(scope="session")
def googlesql() -> Iterator[Analyzer]:
    """Google's GoogleSQL analyzer (ZetaSQL) on a loopback port, for the whole session.

    Missing, it fails rather than skips: CI must analyze every SQL file (``make test`` installs it).
    """
    try:
        server = GoogleSQLServer()
    except NotInstalled as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield Analyzer(server)
    finally:
        server.stop()
