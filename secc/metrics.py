"""Prometheus metrics of the SECC: a small registry and the text exposition format 0.0.4.

The station feeds `Metrics` as things happen (`on_session_started`, `on_exchange`, ...); the
station API renders it on ``GET /metrics``. Nothing here does I/O or reads a clock.

Three kinds of metric family, each with fixed label names:

* `Counter`: only goes up (`inc`);
* `Gauge`: set to a value, or moved up and down;
* `Histogram`: observations counted into fixed cumulative buckets, with their sum.

Label values are escaped as the format requires (backslash, double quote, line feed). Calls
are cheap (a dictionary update under a lock), so that the station may feed the registry on
every message; rendering walks every series and is meant for a scrape every few seconds.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, TypeVar

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "Metrics",
    "Registry",
    "escape_label_value",
    "format_value",
]

#: the Content-Type of the text exposition format
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: upper bounds (seconds) of the message latency buckets, 1 ms .. 5 s
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_LABEL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_HELP_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n"})

LabelValues = tuple[str, ...]
F = TypeVar("F", bound="_Family")


def escape_label_value(value: str) -> str:
    """A label value as it goes between the double quotes."""
    return value.translate(_LABEL_ESCAPES)


def format_value(value: float) -> str:
    """A sample value: whole numbers without a fraction, ``+Inf``/``-Inf``/``NaN`` spelled out."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Family:
    kind: str = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        if not _METRIC_NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labels:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"repeated label name for {name}: {labels}")
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, values: Sequence[str]) -> LabelValues:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {len(values)} value(s)")
        return tuple(str(v) for v in values)

    def _labels(self, values: LabelValues, extra: str = "") -> str:
        pairs = [f'{n}="{escape_label_value(v)}"' for n, v in zip(self.labels, values, strict=True)]
        if extra:
            pairs.append(extra)
        return "{" + ",".join(pairs) + "}" if pairs else ""

    def render(self) -> list[str]:
        lines = [
            f"# HELP {self.name} {self.help.translate(_HELP_ESCAPES)}",
            f"# TYPE {self.name} {self.kind}",
        ]
        with self._lock:
            lines.extend(self._samples())
        return lines

    def _samples(self) -> Iterable[str]:
        raise NotImplementedError


class Counter(_Family):
    """A count that only goes up (per combination of label values)."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if not amount >= 0 or math.isinf(amount):  # also refuses NaN
            raise ValueError(f"{self.name}: a counter goes up by a finite amount, not {amount}")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def _samples(self) -> Iterable[str]:
        for key, value in sorted(self._values.items()):
            yield f"{self.name}{self._labels(key)} {format_value(value)}"


class Gauge(_Family):
    """A value that goes up and down; `remove` drops a series (e.g. a session gone)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def set(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def add(self, amount: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def remove(self, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values.pop(key, None)

    def value(self, *labels: str) -> float | None:
        with self._lock:
            return self._values.get(self._key(labels))

    def _samples(self) -> Iterable[str]:
        for key, value in sorted(self._values.items()):
            yield f"{self.name}{self._labels(key)} {format_value(value)}"


class Histogram(_Family):
    """Observations counted into cumulative buckets (`le`), with their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labels)
        if "le" in self.labels:
            raise ValueError(f"{name}: a histogram cannot have a label named le")
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or not all(map(math.isfinite, bounds)):
            raise ValueError(f"{name}: buckets must be finite and strictly increasing")
        self.buckets = bounds
        self._le = (*(f'le="{format_value(b)}"' for b in bounds), 'le="+Inf"')
        # per series: counts per bucket (not cumulative; the last one is +Inf), sum
        self._series: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labels: str) -> None:
        if math.isnan(value):
            raise ValueError(f"{self.name}: cannot observe NaN")
        key = self._key(labels)
        index = len(self.buckets)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                index = i
                break
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = ([0] * (len(self.buckets) + 1), [0.0])
            series[0][index] += 1
            series[1][0] += value

    def count(self, *labels: str) -> int:
        with self._lock:
            series = self._series.get(self._key(labels))
            return 0 if series is None else sum(series[0])

    def _samples(self) -> Iterable[str]:
        for key, (counts, total) in sorted(self._series.items()):
            cumulative = 0
            for le, count in zip(self._le, counts, strict=True):
                cumulative += count
                yield f"{self.name}_bucket{self._labels(key, le)} {cumulative}"
            yield f"{self.name}_sum{self._labels(key)} {format_value(total[0])}"
            yield f"{self.name}_count{self._labels(key)} {cumulative}"


class Registry:
    """Metric families rendered together, in the order they were added."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def add(self, family: F) -> F:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family
        return family

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        return self.add(Counter(name, help_text, labels))

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        return self.add(Gauge(name, help_text, labels))

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        return self.add(Histogram(name, help_text, labels, buckets=buckets))

    def render(self) -> str:
        """The text exposition format (0.0.4), ending in a line feed."""
        lines: list[str] = []
        for family in self._families.values():
            lines.extend(family.render())
        return "\n".join(lines) + "\n"


class Metrics:
    """The SECC's metrics and the calls the station feeds them with.

    `version` labels ``iso15118_build_info``; `started_at` (seconds since the epoch) is
    ``iso15118_start_time_seconds``. Response codes starting with ``FAILED`` also count as
    errors. EVSE states are a state set: one ``iso15118_evse_state`` series per state, 1 for
    the current one.
    """

    #: the EVSE states the state set lists (`secc.station.EvseState` values)
    EVSE_STATES: Final = ("available", "occupied", "charging", "paused", "faulted", "unavailable")
    OUTBOX_STATES: Final = ("pending", "held", "delivered")

    def __init__(self, *, version: str = "", started_at: float | None = None) -> None:
        r = self.registry = Registry()
        self.build_info = r.gauge(
            "iso15118_build_info", "Version of the ISO 15118 stack (always 1).", ["version"]
        )
        self.build_info.set(1, version)
        self.start_time = r.gauge(
            "iso15118_start_time_seconds", "When the SECC process started (Unix time)."
        )
        if started_at is not None:
            self.start_time.set(started_at)
        self.sessions_total = r.counter(
            "iso15118_sessions_total",
            "V2G sessions started (a resumed session counts again).",
            ["evse_id", "protocol"],
        )
        self.sessions_ended = r.counter(
            "iso15118_sessions_ended_total",
            "V2G sessions ended or paused, by stop reason.",
            ["evse_id", "protocol", "stop_reason"],
        )
        self.sessions_active = r.gauge(
            "iso15118_sessions_active", "V2G sessions in progress.", ["evse_id"]
        )
        self.energy = r.counter(
            "iso15118_energy_wh_total",
            "Energy delivered in ended sessions, in watt-hours.",
            ["evse_id"],
        )
        self.responses = r.counter(
            "iso15118_responses_total",
            "Responses sent to cars, by request message and response code.",
            ["evse_id", "message", "code"],
        )
        self.errors = r.counter(
            "iso15118_errors_total",
            "Responses with a FAILED* response code, by request message and code.",
            ["evse_id", "message", "code"],
        )
        self.latency = r.histogram(
            "iso15118_message_latency_seconds",
            "Time from a request's arrival to the response being sent, by request message.",
            ["message"],
        )
        self.evse_state = r.gauge(
            "iso15118_evse_state", "State of each EVSE (1 for the current state).",
            ["evse_id", "state"],
        )  # fmt: skip
        self.evse_power = r.gauge(
            "iso15118_evse_power_watts", "Power delivered by each EVSE now, in watts.", ["evse_id"]
        )
        self.site_limit = r.gauge(
            "iso15118_site_limit_watts", "The site power limit in watts (absent: no limit)."
        )
        self.outbox = r.gauge(
            "iso15118_billing_outbox",
            "Billing deliveries in the outbox, by state (pending, held, delivered).",
            ["state"],
        )
        self.deliveries = r.counter(
            "iso15118_billing_deliveries_total",
            "Attempts to deliver billing records, by destination and outcome.",
            ["destination", "outcome"],
        )

    # --- fed by the station --------------------------------------------------------------

    def on_session_started(self, evse_id: str, protocol: str) -> None:
        self.sessions_total.inc(evse_id, protocol)
        self.sessions_active.add(1, evse_id)

    def on_session_ended(
        self, evse_id: str, protocol: str, stop_reason: str, energy_wh: float
    ) -> None:
        """A session ended or paused; `energy_wh` is what it (or its part) delivered."""
        self.sessions_ended.inc(evse_id, protocol, stop_reason)
        active = self.sessions_active.value(evse_id) or 0.0
        self.sessions_active.set(max(0.0, active - 1), evse_id)
        if energy_wh > 0 and math.isfinite(energy_wh):
            self.energy.inc(evse_id, amount=energy_wh)

    def on_exchange(self, evse_id: str, request: str, response_code: str, latency_s: float) -> None:
        """One request answered: `request` is its name (``"CableCheckReq"``)."""
        self.responses.inc(evse_id, request, response_code)
        if response_code.upper().startswith("FAILED"):
            self.errors.inc(evse_id, request, response_code)
        if math.isfinite(latency_s) and latency_s >= 0:
            self.latency.observe(latency_s, request)

    def set_evse(self, evse_id: str, state: str, power_w: float) -> None:
        for name in self.EVSE_STATES if state in self.EVSE_STATES else (*self.EVSE_STATES, state):
            self.evse_state.set(1 if name == state else 0, evse_id, name)
        self.evse_power.set(power_w, evse_id)

    def set_site_limit(self, watts: float | None) -> None:
        if watts is None:
            self.site_limit.remove()
        else:
            self.site_limit.set(watts)

    def set_outbox(self, counts: Mapping[str, int]) -> None:
        """Counts by state name (keys may also be enums, e.g. `secc.store.OutboxState`)."""
        named = {str(getattr(k, "value", k)): int(v) for k, v in counts.items()}
        for state in (*self.OUTBOX_STATES, *sorted(set(named) - set(self.OUTBOX_STATES))):
            self.outbox.set(named.get(state, 0), state)

    def on_delivery(self, destination: str, outcome: str) -> None:
        """One delivery attempt: `outcome` e.g. ``"delivered"``, ``"failed"``, ``"rejected"``."""
        self.deliveries.inc(destination, outcome)

    def render(self) -> str:
        return self.registry.render()
