"""``make evaluate``'s --part hands the rest of the command line to that part's own parser."""

import evaluation.demand
from evaluation.run import main


def test_the_demand_part_gets_its_own_arguments_whole(monkeypatch):
    received = []
    monkeypatch.setattr(evaluation.demand, "main", received.append)
    # --horizon must reach the demand part, not be read as an abbreviation of the loyalty --horizons.
    main(["--part", "demand", "--horizon", "3", "--windows", "2"])
    assert received == [["--horizon", "3", "--windows", "2"]]
