"""Prometheus metrics of the lookup service, kept in plain dicts and lists.

A hand-kept registry rather than prometheus_client: one lookup takes a few microseconds, and a
labelled child lookup plus a locked histogram observation per request would double it. The text
is the exposition format 0.0.4: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Callable

# Seconds; most lookups end in the first buckets, a slow one shows where it went.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.users: dict[tuple[str, str], int] = defaultdict(int)  # (client, found|missing)
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = defaultdict(float)
        self.swaps: dict[str, int] = defaultdict(int)
        self.poll_errors = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        counts = self._buckets.get(route)
        if counts is None:
            counts = self._buckets[route] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sums[route] += seconds

    def render(
        self, snapshots: dict[str, tuple[object, float, float, int]], now: Callable[[], float] = time.time
    ) -> bytes:
        """The exposition text; ``snapshots[client]`` = (info, published_at, load_seconds, users)."""
        lines = ["# TYPE karte_serving_requests_total counter"]
        for (route, status), count in sorted(self.requests.items()):
            lines.append(f'karte_serving_requests_total{{route="{route}",status="{status}"}} {count}')
        lines.append("# TYPE karte_serving_request_seconds histogram")
        for route, counts in sorted(self._buckets.items()):
            total = 0
            for bound, count in zip((*BUCKETS, "+Inf"), counts, strict=True):
                total += count
                lines.append(f'karte_serving_request_seconds_bucket{{route="{route}",le="{bound}"}} {total}')
            lines.append(f'karte_serving_request_seconds_sum{{route="{route}"}} {self._sums[route]:.6f}')
            lines.append(f'karte_serving_request_seconds_count{{route="{route}"}} {total}')
        lines.append("# TYPE karte_serving_lookups_total counter")
        for (client, outcome), count in sorted(self.users.items()):
            lines.append(f'karte_serving_lookups_total{{client="{client}",outcome="{outcome}"}} {count}')
        lines.append("# TYPE karte_serving_snapshot_age_seconds gauge")
        for client, (_, published_at, _, _) in sorted(snapshots.items()):
            lines.append(
                f'karte_serving_snapshot_age_seconds{{client="{client}"}} {now() - published_at:.0f}'
            )
        lines.append("# TYPE karte_serving_snapshot_users gauge")
        for client, (_, _, _, users) in sorted(snapshots.items()):
            lines.append(f'karte_serving_snapshot_users{{client="{client}"}} {users}')
        lines.append("# TYPE karte_serving_snapshot_load_seconds gauge")
        for client, (_, _, load_seconds, _) in sorted(snapshots.items()):
            lines.append(f'karte_serving_snapshot_load_seconds{{client="{client}"}} {load_seconds:.3f}')
        lines.append("# TYPE karte_serving_snapshot_swaps_total counter")
        for client, count in sorted(self.swaps.items()):
            lines.append(f'karte_serving_snapshot_swaps_total{{client="{client}"}} {count}')
        lines.append("# TYPE karte_serving_poll_errors_total counter")
        lines.append(f"karte_serving_poll_errors_total {self.poll_errors}")
        return ("\n".join(lines) + "\n").encode()
