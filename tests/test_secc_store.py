"""The SQLite session store and the JSON form of the billing records."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from secc.records import (
    BillingRecord,
    IdentificationKind,
    MeterReading,
    SignedReceipt,
    StopReason,
)
from secc.records_json import (
    RecordFormatError,
    billing_record_from_json,
    billing_record_to_json,
    dumps_billing_record,
    loads_billing_record,
    meter_reading_from_json,
    meter_reading_to_json,
)
from secc.store import (
    SCHEMA_VERSION,
    Direction,
    SessionState,
    SessionStore,
    StoreError,
)

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def reading(wh: int, at: datetime, signature: bytes | None = None) -> MeterReading:
    return MeterReading(meter_id="M1", energy_wh=wh, at=at, signature=signature, status=0)


def record(record_id: str = "r1", session_id: str = "0011223344556677") -> BillingRecord:
    receipt = SignedReceipt(
        exi=b"\x80\x98\x02",
        schema="iso2",
        reading=reading(1500, T0 + timedelta(minutes=10), signature=bytes(range(64))),
        signature_valid=True,
        at=T0 + timedelta(minutes=10, seconds=1),
    )
    return BillingRecord(
        record_id=record_id,
        session_id=session_id,
        evse_id="DE*ABC*E0000001*1",
        protocol="iso2",
        kind=IdentificationKind.CONTRACT,
        contract_id="DEABCC123456780",
        started_at=T0,
        stopped_at=T0 + timedelta(minutes=20),
        meter_start=reading(1000, T0),
        meter_stop=reading(4000, T0 + timedelta(minutes=20)),
        stop_reason=StopReason.EV_STOPPED,
        receipts=(receipt,),
    )


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "secc.sqlite", clock=lambda: T0)


# --- JSON -----------------------------------------------------------------------------------


def test_billing_record_round_trips_through_json() -> None:
    original = record()
    text = dumps_billing_record(original)
    assert loads_billing_record(text) == original
    assert billing_record_from_json(json.loads(text)) == original
    obj = billing_record_to_json(original)
    assert obj["started_at"] == "2024-05-01T12:00:00.000000+00:00"
    assert obj["receipts"][0]["reading"]["signature"] == bytes(range(64)).hex()
    assert obj["energy_wh"] == 3000
    assert obj["kind"] == "contract" and obj["stop_reason"] == "ev-stopped"


def test_json_keeps_other_offsets_and_missing_fields() -> None:
    cet = timezone(timedelta(hours=1))
    r = MeterReading(meter_id="X", energy_wh=5, at=datetime(2024, 1, 1, 8, tzinfo=cet))
    back = meter_reading_from_json(meter_reading_to_json(r))
    assert back == r and back.at.utcoffset() == timedelta(hours=1)
    eim = BillingRecord(
        record_id="e",
        session_id="00",
        evse_id="E",
        protocol="din",
        kind=IdentificationKind.EXTERNAL,
        contract_id=None,
        id_token="RFID-1",
        started_at=T0,
        stopped_at=T0,
        meter_start=None,
        meter_stop=None,
        stop_reason=StopReason.TIMEOUT,
    )
    assert loads_billing_record(dumps_billing_record(eim)) == eim


def test_json_refuses_naive_datetimes_and_bad_shapes() -> None:
    naive = MeterReading(meter_id="X", energy_wh=1, at=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        meter_reading_to_json(naive)
    good = billing_record_to_json(record())
    bad_cases = [
        {**good, "format": 99},
        {**good, "started_at": "2024-05-01T12:00:00"},
        {**good, "kind": "telepathy"},
        {**good, "meter_start": {**good["meter_start"], "energy_wh": "many"}},
        {**good, "receipts": [{**good["receipts"][0], "exi": "zz"}]},
        {k: v for k, v in good.items() if k != "record_id"},
        [],
    ]
    for case in bad_cases:
        with pytest.raises(RecordFormatError):
            billing_record_from_json(case)
    with pytest.raises(RecordFormatError):
        loads_billing_record("{not json")


# --- sessions -------------------------------------------------------------------------------


def test_session_lifecycle_pause_and_resume(store: SessionStore) -> None:
    s = store.session_started(
        "AABB", evse_id="E1", protocol="iso2", at=T0, meter_start=reading(10, T0)
    )
    assert s.state is SessionState.ACTIVE and s.meter_start == reading(10, T0)
    store.session_identified("AABB", kind=IdentificationKind.CONTRACT, contract_id="DEABC")
    store.session_paused("AABB", at=T0 + timedelta(minutes=5))
    paused = store.paused_session("AABB")
    assert paused is not None and paused.paused
    assert paused.stop_reason is StopReason.EV_PAUSED
    assert paused.contract_id == "DEABC" and paused.kind is IdentificationKind.CONTRACT
    resumed = store.session_started(
        "AABB", evse_id="E1", protocol="iso2", at=T0 + timedelta(minutes=30)
    )
    assert resumed.state is SessionState.ACTIVE and not resumed.paused
    assert resumed.started_at == T0  # the original start is kept
    assert resumed.meter_start == reading(10, T0) and resumed.contract_id == "DEABC"
    assert store.paused_session("AABB") is None
    store.session_ended("AABB", at=T0 + timedelta(hours=1), reason=StopReason.EV_STOPPED)
    ended = store.session("AABB")
    assert ended is not None and ended.state is SessionState.ENDED
    assert ended.stopped_at == T0 + timedelta(hours=1)
    assert store.paused_session("nope") is None
    assert [x.session_id for x in store.sessions(state=SessionState.ENDED)] == ["AABB"]
    with pytest.raises(KeyError):
        store.session_paused("nope", at=T0)


def test_naive_datetime_is_refused(store: SessionStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.session_started("A", evse_id="E", protocol="din", at=datetime(2024, 1, 1))


# --- billing and outbox ---------------------------------------------------------------------


def test_record_billing_stores_and_enqueues_in_one_go(store: SessionStore) -> None:
    assert store.record_billing(record()) is True
    assert store.billing_record("r1") == record()
    assert store.billing_records(session_id="0011223344556677") == [record()]
    assert store.billing_record("other") is None
    pending = store.pending_outbox(T0)
    assert [(p.record_id, p.destination, p.attempts) for p in pending] == [("r1", "payment", 0)]
    assert pending[0].record == record()


def test_duplicate_record_id_is_a_no_op(store: SessionStore) -> None:
    assert store.record_billing(record())
    changed = dataclasses.replace(record(), protocol="din")
    assert store.record_billing(changed) is False
    assert store.billing_record("r1") == record()  # the first write wins
    assert len(store.pending_outbox(T0)) == 1
    assert len(store.billing_records()) == 1


def test_outbox_retry_and_delivery(tmp_path: Path) -> None:
    s = SessionStore(tmp_path / "db", clock=lambda: T0, destinations=("payment", "audit"))
    s.record_billing(record("r1"))
    s.record_billing(record("r2"))
    assert len(s.pending_outbox(T0)) == 4
    assert s.pending_outbox(T0 - timedelta(seconds=1)) == []
    s.mark_failed("r1", "payment", error="HTTP 503", retry_at=T0 + timedelta(minutes=1))
    due = s.pending_outbox(T0, destination="payment")
    assert [p.record_id for p in due] == ["r2"]
    later = s.pending_outbox(T0 + timedelta(minutes=1), destination="payment")
    assert [(p.record_id, p.attempts, p.last_error) for p in later] == [
        ("r2", 0, None),
        ("r1", 1, "HTTP 503"),
    ]
    s.mark_delivered("r1", "payment", at=T0 + timedelta(minutes=2))
    assert s.delivered_at("r1", "payment") == T0 + timedelta(minutes=2)
    assert [
        p.record_id for p in s.pending_outbox(T0 + timedelta(hours=1), destination="payment")
    ] == ["r2"]
    with pytest.raises(KeyError):
        s.mark_delivered("r1", "payment", at=T0)  # already delivered
    with pytest.raises(KeyError):
        s.mark_failed("zz", "payment", error="x", retry_at=T0)


def test_timeline(store: SessionStore) -> None:
    assert (
        store.add_timeline("S", direction=Direction.RECEIVED, message="SessionSetupReq", at=T0) == 1
    )
    seq = store.add_timeline(
        "S",
        direction=Direction.SENT,
        message="SessionSetupRes",
        response_code="OK_NewSessionEstablished",
        at=T0 + timedelta(milliseconds=20),
    )
    assert seq == 2
    store.add_timeline("other", direction=Direction.RECEIVED, message="X", at=T0)
    rows = store.timeline("S")
    assert [(r.seq, r.direction, r.message, r.response_code) for r in rows] == [
        (1, Direction.RECEIVED, "SessionSetupReq", None),
        (2, Direction.SENT, "SessionSetupRes", "OK_NewSessionEstablished"),
    ]
    assert rows[1].at == T0 + timedelta(milliseconds=20)


# --- durability and failure modes -----------------------------------------------------------


def test_wal_and_synchronous_full(tmp_path: Path) -> None:
    path = tmp_path / "db"
    s = SessionStore(path)
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert s.schema_version == SCHEMA_VERSION
    s.check()
    s.close()


_CHILD = """
import os, signal, sys
from datetime import UTC, datetime
from secc.store import SessionStore
from test_secc_store import record
store = SessionStore(sys.argv[1])
store.record_billing(record("killed-1"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_record_survives_sigkill_right_after_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "secc.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(path)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert (tmp_path / "secc.sqlite-wal").exists()  # not checkpointed: the WAL holds it
    reopened = SessionStore(path)
    assert reopened.billing_record("killed-1") == record("killed-1")
    assert [p.record_id for p in reopened.pending_outbox(datetime.now(UTC))] == ["killed-1"]


def test_a_file_that_is_not_a_database_gives_store_error(tmp_path: Path) -> None:
    path = tmp_path / "secc.sqlite"
    path.write_bytes(b"this is not SQLite at all, just some text" * 200)
    with pytest.raises(StoreError, match=r"secc\.sqlite"):
        SessionStore(path)


def test_a_damaged_database_gives_store_error(tmp_path: Path) -> None:
    path = tmp_path / "secc.sqlite"
    s = SessionStore(path, clock=lambda: T0)
    for i in range(50):
        s.record_billing(record(f"r{i}"))
    s._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[page : page * 3] = b"\xa5" * (page * 2)  # overwrite the second and third pages
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError):
        damaged = SessionStore(path)
        damaged.billing_records()
        damaged.check()


def test_an_unwritable_location_gives_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        SessionStore(tmp_path / "missing-dir" / "secc.sqlite")


def test_newer_schema_is_refused_and_migrations_run(tmp_path: Path) -> None:
    path = tmp_path / "db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        SessionStore(path)

    calls: list[int] = []
    path2 = tmp_path / "db2"
    SessionStore(path2).close()
    from secc.store import MIGRATIONS

    def extra(db: sqlite3.Connection) -> None:
        calls.append(1)
        db.execute("ALTER TABLE sessions ADD COLUMN note TEXT")

    upgraded = SessionStore(path2, migrations=(*MIGRATIONS, extra))
    assert calls == [1] and upgraded.schema_version == SCHEMA_VERSION + 1
    upgraded.close()
    SessionStore(path2, migrations=(*MIGRATIONS, extra)).close()
    assert calls == [1]  # not run twice


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        raise sqlite3.OperationalError("boom")

    from secc.store import MIGRATIONS

    path = tmp_path / "db"
    with pytest.raises(StoreError, match="boom"):
        SessionStore(path, migrations=(*MIGRATIONS, broken))
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    assert raw.execute("SELECT name FROM sqlite_master WHERE name='half'").fetchall() == []


def test_in_memory_store_for_tests() -> None:
    s = SessionStore(":memory:", clock=lambda: T0)
    assert s.record_billing(record())
    assert s.billing_record("r1") == record()
    with s:
        pass  # closes
