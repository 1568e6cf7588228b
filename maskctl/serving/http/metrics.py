"""Prometheus metrics of one server, on its own registry (so tests can run several servers).

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` histograms); scraped at
``GET /metrics`` in the text format by the official client library.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = PromCounter(
            "maskctl_http_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "maskctl_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inputs = PromCounter("maskctl_task_inputs", "Inputs predicted, by task.", ["task"], registry=r)
        self.input_errors = PromCounter(
            "maskctl_task_input_errors", "Inputs refused or failed, by task.", ["task"], registry=r
        )
        self.batch_size = Histogram(
            "maskctl_batch_inputs", "Inputs per mixed-task batch.", buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_tasks = Histogram(
            "maskctl_batch_tasks", "Distinct tasks per mixed-task batch.", buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "maskctl_batch_duration_seconds", "Compute time of one batch.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("maskctl_queue_requests", "HTTP requests waiting for a batch.", registry=r)
        self.tasks_loaded = Gauge("maskctl_tasks_loaded", "Tasks currently served.", registry=r)
        self.rejected = PromCounter(
            "maskctl_rejected_requests",
            "Requests refused before any work: overloaded (429) or too many inputs (413).",
            ["reason"],
            registry=r,
        )
        self.bundle_events = PromCounter(
            "maskctl_bundle_events", "Bundles loaded, unloaded or refused.", ["event"], registry=r
        )

    def observe_batch(self, requests: list[tuple[str, object]], seconds: float, queued: int) -> None:
        self.batch_size.observe(len(requests))
        self.batch_tasks.observe(len({name for name, _ in requests}))
        self.batch_seconds.observe(seconds)
        self.queue_depth.set(queued)

    def count_inputs(self, ok: Counter, failed: Counter) -> None:
        for name, n in ok.items():
            self.inputs.labels(name).inc(n)
        for name, n in failed.items():
            self.input_errors.labels(name).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
