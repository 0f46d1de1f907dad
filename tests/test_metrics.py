"""secc.metrics: the registry, the text exposition format (0.0.4) and the station's feed."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secc.metrics import (
    LATENCY_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    Metrics,
    Registry,
    escape_label_value,
    format_value,
)

# one sample line: name, optional {labels}, value (the format's grammar, without timestamps)
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)\Z")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|\Z)')


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of an exposition, checking each line's syntax and the HELP/TYPE order."""
    assert text.endswith("\n")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    typed: dict[str, str] = {}
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram")
            assert name not in typed, f"{name} typed twice"
            typed[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, _, label_text, value = match.groups()
        labels = []
        pos = 0
        while label_text and pos < len(label_text):
            m = _LABEL.match(label_text, pos)
            assert m, f"bad labels in {line!r}"
            labels.append((m.group(1), unescape(m.group(2))))
            pos = m.end()
        family = re.sub(r"_(bucket|sum|count)\Z", "", name) if name not in typed else name
        assert family in typed, f"sample {name} before its TYPE line"
        key = (name, frozenset(labels))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value.replace("+Inf", "inf"))
    return samples


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str):
    return samples.get((name, frozenset(labels.items())))


def test_value_format() -> None:
    assert format_value(3.0) == "3"
    assert format_value(0.25) == "0.25"
    assert format_value(float("inf")) == "+Inf"
    assert format_value(float("-inf")) == "-Inf"
    assert format_value(float("nan")) == "NaN"
    assert format_value(1e20) == "1e+20"


def test_label_values_are_escaped() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    gauge = Gauge("g", "help with \\ and\nnewline", ["x"])
    gauge.set(1, 'DE*ABC*"E1"\n')
    lines = gauge.render()
    assert lines[0] == "# HELP g help with \\\\ and\\nnewline"
    assert lines[2] == 'g{x="DE*ABC*\\"E1\\"\\n"} 1'


@given(st.text(max_size=30))
def test_any_label_value_round_trips(value: str) -> None:
    registry = Registry()
    registry.counter("c_total", "c", ["v"]).inc(value)
    samples = parse(registry.render())
    assert sample(samples, "c_total", v=value) == 1


def test_counter() -> None:
    counter = Counter("c_total", "c", ["a"])
    counter.inc("x")
    counter.inc("x", amount=2.5)
    assert counter.value("x") == 3.5
    assert counter.value("y") == 0
    with pytest.raises(ValueError, match="finite amount"):
        counter.inc("x", amount=-1)
    with pytest.raises(ValueError, match="finite amount"):
        counter.inc("x", amount=float("nan"))
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc()
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc("x", "y")


def test_names_are_checked() -> None:
    with pytest.raises(ValueError, match="metric name"):
        Counter("1bad", "x")
    with pytest.raises(ValueError, match="label name"):
        Gauge("ok", "x", ["bad-label"])
    with pytest.raises(ValueError, match="label name"):
        Gauge("ok", "x", ["__reserved"])
    with pytest.raises(ValueError, match="repeated"):
        Gauge("ok", "x", ["a", "a"])
    with pytest.raises(ValueError, match="le"):
        Histogram("h", "x", ["le"])
    with pytest.raises(ValueError, match="increasing"):
        Histogram("h", "x", buckets=(1.0, 0.5))
    with pytest.raises(ValueError, match="increasing"):
        Histogram("h", "x", buckets=(1.0, float("inf")))
    registry = Registry()
    registry.gauge("g", "x")
    with pytest.raises(ValueError, match="already registered"):
        registry.gauge("g", "y")


def test_gauge_set_add_remove() -> None:
    gauge = Gauge("g", "g", ["a"])
    gauge.set(5, "x")
    gauge.add(-2, "x")
    assert gauge.value("x") == 3
    gauge.remove("x")
    assert gauge.value("x") is None
    assert gauge.render()[2:] == []


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram("h_seconds", "h", ["m"], buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0, 7.0):
        histogram.observe(value, "A")
    samples = parse("\n".join(["# TYPE h_seconds histogram", *histogram.render()[2:]]) + "\n")
    assert sample(samples, "h_seconds_bucket", m="A", le="0.1") == 2  # 0.1 is in le="0.1"
    assert sample(samples, "h_seconds_bucket", m="A", le="1") == 3
    assert sample(samples, "h_seconds_bucket", m="A", le="+Inf") == 5
    assert sample(samples, "h_seconds_count", m="A") == 5
    assert sample(samples, "h_seconds_sum", m="A") == pytest.approx(9.65)
    assert histogram.count("A") == 5
    with pytest.raises(ValueError, match="NaN"):
        histogram.observe(float("nan"), "A")


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=40))
def test_histogram_matches_a_direct_count(values: list[float]) -> None:
    histogram = Histogram("h", "h")
    for value in values:
        histogram.observe(value)
    samples = parse("\n".join(["# TYPE h histogram", *histogram.render()[2:]]) + "\n")
    if not values:
        assert samples == {}
        return
    for bound in LATENCY_BUCKETS:
        expected = sum(1 for v in values if v <= bound)
        assert sample(samples, "h_bucket", le=format_value(bound)) == expected
    assert sample(samples, "h_bucket", le="+Inf") == len(values)
    assert math.isclose(sample(samples, "h_sum") or 0.0, sum(values), abs_tol=1e-9)


def test_the_station_feed() -> None:
    metrics = Metrics(version="0.1.0", started_at=1_700_000_000)
    metrics.on_session_started("E1", "iso2")
    metrics.on_session_started("E2", "din")
    metrics.on_exchange("E1", "SessionSetupReq", "OK_NewSessionEstablished", 0.002)
    metrics.on_exchange("E1", "CableCheckReq", "OK", 0.0004)
    metrics.on_exchange("E1", "CableCheckReq", "FAILED_SequenceError", 0.03)
    metrics.on_exchange("E1", "CableCheckReq", "OK", float("nan"))  # counted, not observed
    metrics.on_session_ended("E1", "iso2", "ev-stopped", 1234.0)
    metrics.set_evse("E1", "charging", 11_000.0)
    metrics.set_evse("E1", "available", 0.0)
    metrics.set_site_limit(22_000)
    metrics.set_outbox({"pending": 2, "held": 1, "delivered": 7})
    metrics.on_delivery("payment", "delivered")
    metrics.on_delivery("payment", "failed")
    metrics.on_delivery("payment", "failed")
    s = parse(metrics.render())

    assert sample(s, "iso15118_build_info", version="0.1.0") == 1
    assert sample(s, "iso15118_start_time_seconds") == 1_700_000_000
    assert sample(s, "iso15118_sessions_total", evse_id="E1", protocol="iso2") == 1
    assert sample(s, "iso15118_sessions_active", evse_id="E1") == 0
    assert sample(s, "iso15118_sessions_active", evse_id="E2") == 1
    ended = sample(
        s, "iso15118_sessions_ended_total", evse_id="E1", protocol="iso2", stop_reason="ev-stopped"
    )
    assert ended == 1
    assert sample(s, "iso15118_energy_wh_total", evse_id="E1") == 1234
    ok = sample(s, "iso15118_responses_total", evse_id="E1", message="CableCheckReq", code="OK")
    assert ok == 2
    failed = {"evse_id": "E1", "message": "CableCheckReq", "code": "FAILED_SequenceError"}
    assert sample(s, "iso15118_responses_total", **failed) == 1
    assert sample(s, "iso15118_errors_total", **failed) == 1
    assert ("iso15118_errors_total", frozenset({("code", "OK")})) not in s
    bucket = "iso15118_message_latency_seconds_bucket"
    assert sample(s, bucket, message="CableCheckReq", le="0.001") == 1
    assert sample(s, bucket, message="CableCheckReq", le="+Inf") == 2
    assert sample(s, "iso15118_message_latency_seconds_count", message="SessionSetupReq") == 1
    assert sample(s, "iso15118_evse_state", evse_id="E1", state="available") == 1
    assert sample(s, "iso15118_evse_state", evse_id="E1", state="charging") == 0
    assert sample(s, "iso15118_evse_power_watts", evse_id="E1") == 0
    assert sample(s, "iso15118_site_limit_watts") == 22_000
    assert sample(s, "iso15118_billing_outbox", state="held") == 1
    assert (
        sample(s, "iso15118_billing_deliveries_total", destination="payment", outcome="failed") == 2
    )

    metrics.set_site_limit(None)  # no limit: no sample
    assert not any(name == "iso15118_site_limit_watts" for name, _ in parse(metrics.render()))


def test_active_sessions_never_go_negative() -> None:
    metrics = Metrics()
    metrics.on_session_ended("E1", "iso2", "timeout", 0.0)  # e.g. started before a restart
    assert metrics.sessions_active.value("E1") == 0
    metrics.on_session_ended("E1", "iso2", "timeout", float("inf"))  # no energy counted
    assert metrics.energy.value("E1") == 0


def test_outbox_counts_keyed_by_enum() -> None:
    from secc.store import OutboxState

    metrics = Metrics()
    metrics.set_outbox({OutboxState.PENDING: 3})  # type: ignore[dict-item]
    s = parse(metrics.render())
    assert sample(s, "iso15118_billing_outbox", state="pending") == 3
    assert sample(s, "iso15118_billing_outbox", state="delivered") == 0


def test_unknown_evse_state_is_shown_too() -> None:
    metrics = Metrics()
    metrics.set_evse("E1", "reserved", 0.0)
    s = parse(metrics.render())
    assert sample(s, "iso15118_evse_state", evse_id="E1", state="reserved") == 1
    assert sample(s, "iso15118_evse_state", evse_id="E1", state="available") == 0
