"""Prometheus metrics in the text exposition format (no client library needed).

Counters are per process and start at zero on restart, as Prometheus expects; the database holds the totals.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**kv: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in kv.items())
    return "{" + inner + "}" if inner else ""


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Thread-safe counters, the last batch's PSI per feature and an ingest latency histogram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches: dict[str, int] = defaultdict(int)
        self.rows: dict[str, int] = defaultdict(int)
        self.duplicates: dict[str, int] = defaultdict(int)
        self.alerts: dict[tuple[str, str, str], int] = defaultdict(int)
        self.hits: dict[str, int] = defaultdict(int)
        self.labels: dict[str, int] = defaultdict(int)
        self.psi: dict[tuple[str, str], float] = {}
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.latency = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0

    def ingested(
        self, model: str, n: int, alerts: list[dict[str, Any]], hits: int, summary: dict[str, Any], seconds: float
    ) -> None:
        with self._lock:
            self.batches[model] += 1
            self.rows[model] += n
            self.hits[model] += hits
            for a in alerts:
                self.alerts[(model, a["kind"], a["severity"])] += 1
            for col, f in summary["features"].items():
                self.psi[(model, col)] = float(f["psi"])
            i = next((k for k, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
            self.latency[i] += 1
            self.latency_sum += seconds

    def duplicate(self, model: str) -> None:
        with self._lock:
            self.duplicates[model] += 1

    def labelled(self, model: str, alerts: list[dict[str, Any]]) -> None:
        with self._lock:
            self.labels[model] += 1
            for a in alerts:
                self.alerts[(model, a["kind"], a["severity"])] += 1

    def request(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self.requests[(method, route, str(status))] += 1

    def render(self) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(
                f"{name}{lab} {value:g}" if isinstance(value, float) else f"{name}{lab} {value}"
                for lab, value in samples
            )

        with self._lock:
            family(
                "poisonguard_batches_total",
                "counter",
                "Batches committed.",
                [(_labels(model=m), v) for m, v in sorted(self.batches.items())],
            )
            family(
                "poisonguard_rows_total",
                "counter",
                "Inference rows committed.",
                [(_labels(model=m), v) for m, v in sorted(self.rows.items())],
            )
            family(
                "poisonguard_duplicate_batches_total",
                "counter",
                "Retried batches recognised by their batch id.",
                [(_labels(model=m), v) for m, v in sorted(self.duplicates.items())],
            )
            family(
                "poisonguard_label_batches_total",
                "counter",
                "Batches of delayed labels committed.",
                [(_labels(model=m), v) for m, v in sorted(self.labels.items())],
            )
            family(
                "poisonguard_alerts_total",
                "counter",
                "Alerts raised.",
                [(_labels(model=m, kind=k, severity=s), v) for (m, k, s), v in sorted(self.alerts.items())],
            )
            family(
                "poisonguard_trigger_hits_total",
                "counter",
                "Rows that carried a known trigger.",
                [(_labels(model=m), v) for m, v in sorted(self.hits.items())],
            )
            family(
                "poisonguard_feature_psi",
                "gauge",
                "PSI of each feature in the latest batch.",
                [(_labels(model=m, feature=f), v) for (m, f), v in sorted(self.psi.items())],
            )
            family(
                "poisonguard_http_requests_total",
                "counter",
                "HTTP requests by route and status.",
                [(_labels(method=a, route=b, status=c), v) for (a, b, c), v in sorted(self.requests.items())],
            )
            out.append("# HELP poisonguard_ingest_seconds Time to check and commit a batch.")
            out.append("# TYPE poisonguard_ingest_seconds histogram")
            cum = 0
            for b, c in zip(BUCKETS, self.latency, strict=False):
                cum += c
                out.append(f'poisonguard_ingest_seconds_bucket{{le="{b}"}} {cum}')
            cum += self.latency[-1]
            out.append(f'poisonguard_ingest_seconds_bucket{{le="+Inf"}} {cum}')
            out.append(f"poisonguard_ingest_seconds_sum {self.latency_sum:g}")
            out.append(f"poisonguard_ingest_seconds_count {cum}")
        return "\n".join(out) + "\n"
