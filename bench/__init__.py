"""Benchmarks of the loyalty graph on this machine: ``python -m bench.run`` (``make bench``)."""
