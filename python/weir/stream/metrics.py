"""A Prometheus / OpenMetrics endpoint for running pipelines.

Opt-in: ``Pipeline(..., metrics_port=9464)`` serves one pipeline for the
length of its run; ``weir-worker --metrics-port 9464`` serves every
partition the worker owns plus the worker's own counters. Or by hand::

    server = MetricsServer(9464)          # http://127.0.0.1:9464/metrics
    server.add(pipeline, {"pipeline": "fraud"})
    ...
    server.close()

Every figure is read when Prometheus scrapes (nothing is computed per
event). A pipeline contributes, with its labels:

* ``weir_stream_events_total``, ``weir_stream_dead_letters_total``,
  ``weir_stream_sink_items_total{sink=...}``;
* ``weir_stream_lag_events`` (when the source can tell) and
  ``weir_stream_state_keys`` (keys cached in operator state);
* ``weir_stream_checkpoints_total``, and the histograms
  ``weir_stream_checkpoint_duration_seconds`` (barrier to commit) and
  ``weir_stream_checkpoint_pause_seconds`` (longest stand-still of the
  pipeline per checkpoint);
* its store's ``weir_store_keys`` and ``weir_store_bytes_on_disk``, and
  for the weir engine its counters (``weir_store_engine_*``: gets, writes,
  flushes, compactions, block-cache hits, write amplification, ...) and
  ``weir_store_level_files{level}`` / ``weir_store_level_bytes{level}``.
  Store figures are fetched on the pipeline's event loop (the store's own
  ``get_stats``) at most every ``store_stats_seconds`` (default 10 s: it
  counts keys by a scan).

Needs ``prometheus_client`` (``pip install "weirdb[metrics]"``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._runtime import Pipeline

__all__ = ["CHECKPOINT_BUCKETS", "MetricsServer"]

#: Histogram buckets (seconds) of checkpoint durations and pauses.
CHECKPOINT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Engine figures that are levels, not running counts.
_ENGINE_GAUGES = frozenset(
    {
        "block_cache_capacity",
        "block_cache_usage",
        "block_cache_pinned",
        "block_cache_entries",
        "open_tables",
        "pending_compaction_bytes",
        "get_p50_ns",
        "get_p99_ns",
        "write_p50_ns",
        "write_p99_ns",
        "write_amplification",
        "total_sst_bytes",
        "memtable_bytes",
    }
)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "the metrics endpoint needs prometheus_client: pip install 'weirdb[metrics]'"
        ) from e
    return prometheus_client


class _Entry:
    """One registered pipeline, its labels and its cached store figures."""

    def __init__(self, pipeline: Pipeline, labels: dict[str, str], loop: Any) -> None:
        self.pipeline = pipeline
        self.labels = labels
        self.loop = loop
        self.store_stats: dict[str, Any] | None = None
        self.store_stats_at = 0.0


class MetricsServer:
    """An HTTP endpoint (``/metrics``, Prometheus text or OpenMetrics by
    content negotiation) on ``addr:port`` (port 0: any free one, see
    :attr:`port`) serving the pipelines added to it."""

    def __init__(
        self, port: int, addr: str = "127.0.0.1", *, store_stats_seconds: float = 10.0
    ) -> None:
        prom = _prometheus()
        from prometheus_client.registry import CollectorRegistry

        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._extra: list[Callable[[], Iterable[Any]]] = []
        self.store_stats_seconds = store_stats_seconds
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # collect() below
        try:
            self._server, self._thread = prom.start_http_server(port, addr, registry=self.registry)
        except OSError as e:
            raise OSError(e.errno, f"cannot serve metrics on {addr}:{port}: {e.strerror}") from e
        #: the port actually bound
        self.port: int = self._server.server_port
        self.addr = addr

    @property
    def url(self) -> str:
        """Where to scrape."""
        return f"http://{self.addr}:{self.port}/metrics"

    def add(self, pipeline: Pipeline, labels: dict[str, str]) -> None:
        """Serve ``pipeline``'s figures under ``labels`` (call from the
        pipeline's event loop, so its store can be asked for its stats)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._entries.append(_Entry(pipeline, dict(labels), loop))

    def remove(self, pipeline: Pipeline) -> None:
        """Stop serving ``pipeline``."""
        with self._lock:
            self._entries = [e for e in self._entries if e.pipeline is not pipeline]

    def add_collector(self, fn: Callable[[], Iterable[Any]]) -> None:
        """Also serve the metric families ``fn()`` yields at each scrape
        (weir-worker's own counters)."""
        with self._lock:
            self._extra.append(fn)

    def close(self) -> None:
        """Stop serving (idempotent)."""
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(5)
            self._server = None

    # ---- scraping (in the server's thread) ---------------------------------------------------

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        with self._lock:
            entries = list(self._entries)
            extra = list(self._extra)
        names = sorted({k for e in entries for k in e.labels})
        fam: dict[str, Any] = {}

        def family(kind: Any, name: str, doc: str, more: tuple[str, ...] = ()) -> Any:
            if name not in fam:
                fam[name] = kind(name, doc, labels=[*names, *more])
            return fam[name]

        for e in entries:
            m = e.pipeline.metrics()
            lv = [e.labels.get(k, "") for k in names]
            family(CounterMetricFamily, "weir_stream_events", "Events processed").add_metric(
                lv, m["events_total"]
            )
            family(
                CounterMetricFamily, "weir_stream_dead_letters", "Records sent to dead letters"
            ).add_metric(lv, m["dead_letters"])
            sinks = family(
                CounterMetricFamily, "weir_stream_sink_items", "Items written per sink", ("sink",)
            )
            for sink, n in m["sinks"].items():
                sinks.add_metric([*lv, sink], n)
            if m["lag"] is not None:
                family(
                    GaugeMetricFamily, "weir_stream_lag_events", "Input events not yet read"
                ).add_metric(lv, m["lag"])
            family(
                GaugeMetricFamily, "weir_stream_state_keys", "Keys cached in operator state"
            ).add_metric(lv, m["state_keys"])
            family(
                CounterMetricFamily, "weir_stream_checkpoints", "Checkpoints committed"
            ).add_metric(lv, m["checkpoints"])
            hist = e.pipeline.checkpoint_history()
            for name, doc, values in (
                (
                    "weir_stream_checkpoint_duration_seconds",
                    "Checkpoint time from barrier to commit",
                    hist["durations"],
                ),
                (
                    "weir_stream_checkpoint_pause_seconds",
                    "Longest stand-still of the pipeline per checkpoint",
                    hist["pauses"],
                ),
            ):
                family(HistogramMetricFamily, name, doc).add_metric(
                    lv, _buckets(values), sum_value=sum(values)
                )
            stats = self._store_stats(e)
            if stats is not None:
                self._store_families(stats, lv, family, GaugeMetricFamily, CounterMetricFamily)
        yield from fam.values()
        for fn in extra:
            yield from fn()

    def _store_stats(self, e: _Entry) -> dict[str, Any] | None:
        now = time.monotonic()
        if e.store_stats is not None and now - e.store_stats_at < self.store_stats_seconds:
            return e.store_stats
        store = e.pipeline.store
        if e.loop is None or e.loop.is_closed() or not store.started:
            return e.store_stats
        try:
            fut = asyncio.run_coroutine_threadsafe(store.get_stats(), e.loop)
            e.store_stats = fut.result(timeout=5)
        except (concurrent.futures.TimeoutError, RuntimeError, OSError, ValueError):
            return e.store_stats  # the store is closing or busy: the last figures stand
        except Exception:
            return e.store_stats
        e.store_stats_at = now
        return e.store_stats

    @staticmethod
    def _store_families(
        stats: dict[str, Any], lv: list[str], family: Any, gauge: Any, counter: Any
    ) -> None:
        if isinstance(stats.get("keys"), int):
            family(gauge, "weir_store_keys", "Keys in the state store").add_metric(
                lv, stats["keys"]
            )
        if isinstance(stats.get("bytes_on_disk"), int):
            family(
                gauge, "weir_store_bytes_on_disk", "Bytes of the state store on disk"
            ).add_metric(lv, stats["bytes_on_disk"])
        engine = stats.get("engine")
        if not isinstance(engine, dict):
            return
        for key, value in sorted(engine.items()):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            name = f"weir_store_engine_{key}"
            kind = gauge if key in _ENGINE_GAUGES else counter
            family(kind, name, f"weir engine: {key}").add_metric(lv, value)
        for level in engine.get("levels") or []:
            lvl = [*lv, str(level.get("level"))]
            family(gauge, "weir_store_level_files", "Table files per level", ("level",)).add_metric(
                lvl, level.get("files", 0)
            )
            family(gauge, "weir_store_level_bytes", "Table bytes per level", ("level",)).add_metric(
                lvl, level.get("bytes", 0)
            )


def _buckets(values: list[float]) -> list[tuple[str, float]]:
    ordered = sorted(values)
    out: list[tuple[str, float]] = []
    i = 0
    for bound in CHECKPOINT_BUCKETS:
        while i < len(ordered) and ordered[i] <= bound:
            i += 1
        out.append((repr(bound), i))
    out.append(("+Inf", len(ordered)))
    return out
