"""The SECC's durable state: sessions, billing records, the delivery outbox, message timelines.

One SQLite file (stdlib `sqlite3`) in the data directory, opened in WAL mode with
``synchronous=FULL``: a transaction that returned from COMMIT has been fsynced to the WAL, so
it survives the process being killed and (as far as the disk honours fsync) a power cut.

Billing is written before it is acknowledged: `record_billing` stores the record *and* one
outbox row per delivery destination in the same transaction, so a record can never be stored
without being queued for the payment processor, nor queued without being stored. It is
idempotent on `BillingRecord.record_id` (a second call with the same id changes nothing).

The outbox (schema v2): each (record, destination) row is *pending* (to be delivered; due at
`next_attempt_at`), *delivered* (with the processor's reference) or *held* (the processor
refused the record for good: it waits for an operator, who `release`s it). Only pending rows
are ever handed out for delivery, and a row leaves that state only by one of `mark_delivered`
or `mark_held`, so a row is never marked twice.

Crash recovery (schema v3): while a session runs, the station persists its latest meter
reading (`session_meter`); after a restart `open_sessions` lists the sessions the previous
process left active or paused, which `secc.recovery` bills and closes.

Threading and asyncio: every call is short and synchronous (one small transaction). The
store is meant for one asyncio process calling it from the event loop; a lock makes it safe
to call from a worker thread too (`asyncio.to_thread`). Another process may open the same
file for short operator commands (``iso15118 billing retry``): SQLite's locks serialise the
transactions (a writer waits up to 5 s for the other), but keep such access occasional.

Times: every datetime passed in must be timezone-aware; it is stored as UTC ISO 8601 text of
fixed width, so that SQL comparisons (`pending_outbox`) order correctly.

The schema is versioned with ``PRAGMA user_version``. `MIGRATIONS[n]` takes a database from
version n to n + 1; opening a file runs the missing steps in one transaction, and refuses a
file written by a newer version (`StoreError`). Every SQLite failure (a file that is not a
database, a corrupted page, a directory that cannot be written) surfaces as `StoreError`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from secc.records import BillingRecord, IdentificationKind, MeterReading, StopReason
from secc.records_json import (
    RecordFormatError,
    dumps_billing_record,
    loads_billing_record,
    meter_reading_from_json,
    meter_reading_to_json,
)

__all__ = [
    "DEFAULT_DESTINATIONS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Direction",
    "Migration",
    "OpenSession",
    "OutboxEntry",
    "OutboxItem",
    "OutboxState",
    "SessionState",
    "SessionStore",
    "StoreError",
    "StoredSession",
    "TimelineEntry",
]

log = logging.getLogger(__name__)

DEFAULT_DESTINATIONS: Final = ("payment",)

Migration = Callable[[sqlite3.Connection], None]


class StoreError(Exception):
    """The store cannot be opened, read or written (not a database, corrupted, newer schema,
    no permission, disk full)."""


class SessionState(Enum):
    ACTIVE = "active"
    PAUSED = "paused"  # SessionStop(Pause): the car may come back with the same SessionID
    ENDED = "ended"


class Direction(Enum):
    """A timeline row's direction, seen from the SECC."""

    RECEIVED = "rx"  # a request from the car
    SENT = "tx"  # our response


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSession:
    session_id: str
    evse_id: str
    protocol: str
    state: SessionState
    started_at: datetime
    stopped_at: datetime | None
    kind: IdentificationKind | None
    contract_id: str | None
    id_token: str | None
    meter_start: MeterReading | None
    stop_reason: StopReason | None

    @property
    def paused(self) -> bool:
        return self.state is SessionState.PAUSED


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenSession:
    """A session the store still shows active or paused, with what crash recovery needs
    (`secc.recovery`): `parts` counts its parts (1, plus one per resumption after a pause);
    the current part started at `part_started_at` with `part_meter_start`; `meter_last` is
    the latest reading the station persisted during the current part."""

    session: StoredSession
    parts: int
    part_started_at: datetime
    part_meter_start: MeterReading | None
    meter_last: MeterReading | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """One pending delivery of a billing record to one destination."""

    record: BillingRecord
    destination: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None

    @property
    def record_id(self) -> str:
        return self.record.record_id


class OutboxState(Enum):
    """Where one record's delivery to one destination stands."""

    PENDING = "pending"  # to be delivered (again) at next_attempt_at
    DELIVERED = "delivered"  # the destination acknowledged it
    HELD = "held"  # the destination refused it for good; an operator must release it


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEntry:
    """One outbox row with a summary of its record, for operators (`iso15118 billing`)."""

    record_id: str
    destination: str
    state: OutboxState
    session_id: str
    evse_id: str
    protocol: str
    kind: IdentificationKind
    contract_id: str | None
    id_token: str | None
    energy_wh: int
    amount: Decimal | None  # the record's price total, if it has a price
    currency: str | None
    created_at: datetime  # when the record was stored
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None  # pending only
    delivered_at: datetime | None
    held_at: datetime | None
    reference: str | None  # the processor's reference, once delivered


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    session_id: str
    seq: int
    direction: Direction
    message: str  # e.g. "CableCheckReq"
    response_code: str | None
    at: datetime


# --- schema ---------------------------------------------------------------------------------


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            evse_id TEXT NOT NULL,
            protocol TEXT NOT NULL,
            state TEXT NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            started_at TEXT NOT NULL,
            stopped_at TEXT,
            kind TEXT,
            contract_id TEXT,
            id_token TEXT,
            meter_start TEXT,
            stop_reason TEXT)"""
    )
    db.execute(
        """CREATE TABLE billing_records (
            record_id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            record TEXT NOT NULL,
            created_at TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX billing_by_session ON billing_records(session_id)")
    db.execute(
        """CREATE TABLE outbox (
            record_id TEXT NOT NULL REFERENCES billing_records(record_id),
            destination TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            delivered_at TEXT,
            last_error TEXT,
            PRIMARY KEY (record_id, destination))"""
    )
    db.execute("CREATE INDEX outbox_due ON outbox(delivered_at, next_attempt_at)")
    db.execute(
        """CREATE TABLE timeline (
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            direction TEXT NOT NULL,
            message TEXT NOT NULL,
            response_code TEXT,
            at TEXT NOT NULL,
            PRIMARY KEY (session_id, seq))"""
    )


def _v2(db: sqlite3.Connection) -> None:
    """Outbox states: pending, delivered (with the processor's reference), held."""
    db.execute(
        """ALTER TABLE outbox ADD COLUMN state TEXT NOT NULL DEFAULT 'pending'
           CHECK (state IN ('pending', 'delivered', 'held'))"""
    )
    db.execute("ALTER TABLE outbox ADD COLUMN reference TEXT")
    db.execute("ALTER TABLE outbox ADD COLUMN held_at TEXT")
    db.execute("UPDATE outbox SET state='delivered' WHERE delivered_at IS NOT NULL")
    db.execute("CREATE INDEX outbox_state ON outbox(state, destination, next_attempt_at)")


def _v3(db: sqlite3.Connection) -> None:
    """Crash recovery: each session's latest persisted meter reading and its current part
    (a resumed session's second part starts at its resumption, with its own meter reading)."""
    db.execute("ALTER TABLE sessions ADD COLUMN meter_last TEXT")
    db.execute("ALTER TABLE sessions ADD COLUMN parts INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE sessions ADD COLUMN part_started_at TEXT")
    db.execute("ALTER TABLE sessions ADD COLUMN part_meter_start TEXT")
    db.execute("CREATE INDEX sessions_by_state ON sessions(state)")


#: MIGRATIONS[n] brings a database from user_version n to n + 1 (append, never edit)
MIGRATIONS: Final[tuple[Migration, ...]] = (_v1, _v2, _v3)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def _time(value: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store takes timezone-aware times")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _now() -> datetime:
    return datetime.now(UTC)


# --- the store ------------------------------------------------------------------------------


class SessionStore:
    """Open (creating or migrating) the store at `path` (``":memory:"`` for tests: no WAL,
    no durability). `destinations` names the outbox rows each billing record gets; `clock`
    gives the wall-clock time of `created_at` (injectable for tests)."""

    def __init__(
        self,
        path: str | Path,
        *,
        destinations: Sequence[str] = DEFAULT_DESTINATIONS,
        clock: Callable[[], datetime] = _now,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self.path = path
        self._destinations = tuple(destinations)
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=5.0
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the session store {path}: {exc}") from exc
        try:
            self._configure(str(path) != ":memory:")
            self._migrate(migrations)
        except (sqlite3.Error, StoreError) as exc:
            self._db.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"session store {path} is unusable: {exc}") from exc

    def _configure(self, on_disk: bool) -> None:
        if on_disk:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"session store {self.path}: cannot use WAL (got {mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        target = len(migrations)
        if version > target:
            raise StoreError(
                f"session store {self.path} has schema version {version}; this program "
                f"knows up to {target} (written by a newer version?)"
            )
        if version == target:
            return
        with self._transaction() as db:
            for step in range(version, target):
                migrations[step](db)
                log.info("session store %s: schema %d -> %d", self.path, step, step + 1)
            db.execute(f"PRAGMA user_version={target:d}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (fsynced: synchronous=FULL), ROLLBACK on any error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"session store {self.path}: {exc}") from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"session store {self.path}: {exc}") from exc
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cursor = self._db.execute(sql, tuple(params))
                cursor.row_factory = sqlite3.Row
                return list(cursor.fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"session store {self.path}: {exc}") from exc

    @property
    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def check(self) -> None:
        """PRAGMA quick_check; StoreError describing the first problem, if any."""
        rows = self._query("PRAGMA quick_check")
        if [tuple(r) for r in rows] != [("ok",)]:
            raise StoreError(f"session store {self.path} is damaged: {rows[0][0]}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- sessions ---------------------------------------------------------------------------

    def session_started(
        self,
        session_id: str,
        *,
        evse_id: str,
        protocol: str,
        at: datetime,
        meter_start: MeterReading | None = None,
    ) -> StoredSession:
        """A new session, or a paused one resumed (same SessionID: keeps its start time,
        identification and first meter reading; a new part starts at `at` with `meter_start`)."""
        meter = None if meter_start is None else _json_reading(meter_start)
        with self._transaction() as db:
            db.execute(
                """INSERT INTO sessions (session_id, evse_id, protocol, state, paused,
                       started_at, meter_start) VALUES (?, ?, ?, 'active', 0, ?, ?)
                   ON CONFLICT(session_id) DO UPDATE SET state='active', paused=0,
                       stopped_at=NULL, stop_reason=NULL, protocol=excluded.protocol,
                       evse_id=excluded.evse_id, parts=parts+1,
                       part_started_at=excluded.started_at,
                       part_meter_start=excluded.meter_start, meter_last=NULL""",
                (session_id, evse_id, protocol, _time(at), meter),
            )
        session = self.session(session_id)
        assert session is not None
        return session

    def session_identified(
        self,
        session_id: str,
        *,
        kind: IdentificationKind,
        contract_id: str | None = None,
        id_token: str | None = None,
    ) -> None:
        """Who is charging, once authorised."""
        self._update_session(
            session_id,
            "kind=?, contract_id=?, id_token=?",
            (kind.value, contract_id, id_token),
        )

    def session_paused(self, session_id: str, *, at: datetime) -> None:
        """SessionStop(Pause): keep the session so that the car can resume it."""
        self._update_session(
            session_id,
            "state='paused', paused=1, stopped_at=?, stop_reason=?",
            (_time(at), StopReason.EV_PAUSED.value),
        )

    def session_ended(self, session_id: str, *, at: datetime, reason: StopReason) -> None:
        self._update_session(
            session_id,
            "state='ended', paused=0, stopped_at=?, stop_reason=?",
            (_time(at), reason.value),
        )

    def session_meter(self, session_id: str, reading: MeterReading) -> bool:
        """The latest meter reading of an active session (what crash recovery bills up to);
        False if the session is not active (any more)."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE sessions SET meter_last=? WHERE session_id=? AND state='active'",
                (_json_reading(reading), session_id),
            )
            return cursor.rowcount == 1

    def open_sessions(self) -> list[OpenSession]:
        """Sessions still active or paused, oldest first: after a restart, those the
        previous process left open (`secc.recovery`)."""
        rows = self._query(
            """SELECT * FROM sessions WHERE state IN ('active', 'paused')
               ORDER BY started_at, rowid"""
        )
        return [_open_session(r) for r in rows]

    def _update_session(self, session_id: str, assignments: str, params: tuple[Any, ...]) -> None:
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE sessions SET {assignments} WHERE session_id=?", (*params, session_id)
            )
            if cursor.rowcount != 1:
                raise KeyError(f"no session {session_id} in the store")

    def session(self, session_id: str) -> StoredSession | None:
        rows = self._query("SELECT * FROM sessions WHERE session_id=?", (session_id,))
        return _session(rows[0]) if rows else None

    def paused_session(self, session_id: str) -> StoredSession | None:
        """The session if it is paused (may be resumed with this SessionID), else None."""
        session = self.session(session_id)
        return session if session is not None and session.paused else None

    def sessions(
        self,
        *,
        state: SessionState | None = None,
        evse_id: str | None = None,
        contract_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredSession]:
        """Most recent first, optionally of one state, EVSE or contract, started in
        [since, until)."""
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("state=?", None if state is None else state.value),
            ("evse_id=?", evse_id),
            ("contract_id=?", contract_id),
            ("started_at>=?", None if since is None else _time(since)),
            ("started_at<?", None if until is None else _time(until)),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            f"SELECT * FROM sessions {where} ORDER BY started_at DESC LIMIT ?", [*params, limit]
        )
        return [_session(r) for r in rows]

    # --- billing ----------------------------------------------------------------------------

    def record_billing(self, record: BillingRecord) -> bool:
        """Store `record` and queue it for every destination, in one durable transaction.
        True if stored now, False if a record with this `record_id` was already stored (then
        nothing changes, even if the content differs: the first write wins)."""
        text = dumps_billing_record(record)
        created = _time(self._clock())
        with self._transaction() as db:
            cursor = db.execute(
                """INSERT INTO billing_records (record_id, session_id, record, created_at)
                   VALUES (?, ?, ?, ?) ON CONFLICT(record_id) DO NOTHING""",
                (record.record_id, record.session_id, text, created),
            )
            if cursor.rowcount == 0:
                log.info("billing record %s already stored", record.record_id)
                return False
            db.executemany(
                """INSERT INTO outbox (record_id, destination, next_attempt_at)
                   VALUES (?, ?, ?)""",
                [(record.record_id, d, created) for d in self._destinations],
            )
        log.info(
            "billing record %s stored (session %s, %d Wh)",
            record.record_id,
            record.session_id,
            record.energy_wh,
            extra={"session_id": record.session_id},
        )
        return True

    def billing_record(self, record_id: str) -> BillingRecord | None:
        rows = self._query("SELECT record FROM billing_records WHERE record_id=?", (record_id,))
        return self._load(rows[0]["record"]) if rows else None

    def billing_records(
        self,
        *,
        session_id: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[BillingRecord]:
        """Records in the order they were stored, optionally of one session or since a time."""
        clauses, params = [], []
        if session_id is not None:
            clauses.append("session_id=?")
            params.append(session_id)
        if since is not None:
            clauses.append("created_at>=?")
            params.append(_time(since))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            f"SELECT record FROM billing_records {where} ORDER BY created_at, rowid LIMIT ?",
            [*params, limit],
        )
        return [self._load(r["record"]) for r in rows]

    def _load(self, text: str) -> BillingRecord:
        try:
            return loads_billing_record(text)
        except RecordFormatError as exc:
            raise StoreError(
                f"session store {self.path}: unreadable billing record: {exc}"
            ) from exc

    # --- outbox -----------------------------------------------------------------------------

    def pending_outbox(
        self,
        now: datetime,
        *,
        destination: str | None = None,
        after: datetime | None = None,
        limit: int = 100,
    ) -> list[OutboxItem]:
        """Pending items whose next attempt is due at `now` (and, if given, later than
        `after`), oldest due first. Held and delivered items are never returned."""
        clauses, params = _due_clauses(destination, after)
        rows = self._query(
            f"""SELECT o.destination, o.attempts, o.next_attempt_at, o.last_error, b.record
                FROM outbox o JOIN billing_records b USING (record_id)
                WHERE o.state='pending' AND o.next_attempt_at<=? {clauses}
                ORDER BY o.next_attempt_at, o.rowid LIMIT ?""",
            [_time(now), *params, limit],
        )
        return [
            OutboxItem(
                record=self._load(r["record"]),
                destination=r["destination"],
                attempts=r["attempts"],
                next_attempt_at=_parse_time(r["next_attempt_at"]),
                last_error=r["last_error"],
            )
            for r in rows
        ]

    def mark_delivered(
        self, record_id: str, destination: str, *, at: datetime, reference: str = ""
    ) -> None:
        """The destination acknowledged the record (`reference`: its own reference for it);
        it leaves the outbox (kept as history). KeyError unless the item is pending."""
        self._update_outbox(
            record_id,
            destination,
            "state='delivered', delivered_at=?, reference=?, attempts=attempts+1",
            (_time(at), reference),
        )

    def mark_failed(
        self, record_id: str, destination: str, *, error: str, retry_at: datetime
    ) -> None:
        """A delivery attempt failed; try again at `retry_at` (the caller's back-off)."""
        self._update_outbox(
            record_id,
            destination,
            "attempts=attempts+1, last_error=?, next_attempt_at=?",
            (error, _time(retry_at)),
        )

    def mark_held(self, record_id: str, destination: str, *, error: str, at: datetime) -> None:
        """The destination refused the record for good: hold it until an operator releases
        it (`release`). KeyError unless the item is pending."""
        self._update_outbox(
            record_id,
            destination,
            "state='held', held_at=?, attempts=attempts+1, last_error=?",
            (_time(at), error),
        )

    def release(
        self, *, at: datetime, record_id: str | None = None, destination: str | None = None
    ) -> int:
        """Make held and pending items due at `at` (an operator's retry): those of one record
        (and destination), or all of them. Returns how many items were released."""
        clauses, params = ["state IN ('pending', 'held')"], []
        if record_id is not None:
            clauses.append("record_id=?")
            params.append(record_id)
        if destination is not None:
            clauses.append("destination=?")
            params.append(destination)
        with self._transaction() as db:
            cursor = db.execute(
                f"""UPDATE outbox SET state='pending', held_at=NULL, next_attempt_at=?
                    WHERE {" AND ".join(clauses)}""",
                [_time(at), *params],
            )
            count = int(cursor.rowcount)
        log.info("outbox: %d item(s) released (record %s)", count, record_id or "all")
        return count

    def outbox_entries(
        self,
        state: OutboxState | Collection[OutboxState] | None = None,
        *,
        record_id: str | None = None,
        destination: str | None = None,
        newest_first: bool = False,
        limit: int = 100,
    ) -> list[OutboxEntry]:
        """Outbox rows with their record's summary, in the order the records were stored
        (`newest_first` reverses it), optionally of some states, one record or destination."""
        clauses: list[str] = []
        params: list[Any] = []
        if state is not None:
            states = [state] if isinstance(state, OutboxState) else list(state)
            clauses.append(f"o.state IN ({', '.join('?' * len(states))})")
            params.extend(s.value for s in states)
        for column, value in (
            ("o.record_id", record_id),
            ("o.destination", destination),
        ):
            if value is not None:
                clauses.append(f"{column}=?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if newest_first else "ASC"
        rows = self._query(
            f"""SELECT o.*, b.record, b.created_at
                FROM outbox o JOIN billing_records b USING (record_id) {where}
                ORDER BY b.created_at {order}, b.rowid {order}, o.destination LIMIT ?""",
            [*params, limit],
        )
        return [self._entry(r) for r in rows]

    def _entry(self, row: sqlite3.Row) -> OutboxEntry:
        record = self._load(row["record"])
        state = OutboxState(row["state"])
        price = record.price
        return OutboxEntry(
            record_id=record.record_id,
            destination=row["destination"],
            state=state,
            session_id=record.session_id,
            evse_id=record.evse_id,
            protocol=record.protocol,
            kind=record.kind,
            contract_id=record.contract_id,
            id_token=record.id_token,
            energy_wh=record.energy_wh,
            amount=None if price is None else price.total,
            currency=None if price is None else price.currency,
            created_at=_parse_time(row["created_at"]),
            attempts=row["attempts"],
            last_error=row["last_error"],
            next_attempt_at=(
                _parse_time(row["next_attempt_at"]) if state is OutboxState.PENDING else None
            ),
            delivered_at=_optional_time(row["delivered_at"]),
            held_at=_optional_time(row["held_at"]),
            reference=row["reference"],
        )

    def outbox_counts(self, *, destination: str | None = None) -> dict[OutboxState, int]:
        """How many outbox items are in each state (every state present, 0 if none)."""
        where, params = ("WHERE destination=?", [destination]) if destination else ("", [])
        rows = self._query(
            f"SELECT state, COUNT(*) AS n FROM outbox {where} GROUP BY state", params
        )
        counts = dict.fromkeys(OutboxState, 0)
        for r in rows:
            counts[OutboxState(r["state"])] = int(r["n"])
        return counts

    def next_due(
        self, *, destination: str | None = None, after: datetime | None = None
    ) -> datetime | None:
        """When the earliest pending item (of `destination`, due later than `after`) is due;
        None if nothing is pending."""
        clauses, params = _due_clauses(destination, after, prefix="")
        rows = self._query(
            f"SELECT MIN(next_attempt_at) AS due FROM outbox WHERE state='pending' {clauses}",
            params,
        )
        return _optional_time(rows[0]["due"])

    def pending_destinations(self) -> list[str]:
        """The destinations that have pending items, sorted."""
        rows = self._query(
            "SELECT DISTINCT destination FROM outbox WHERE state='pending' ORDER BY destination"
        )
        return [r["destination"] for r in rows]

    def _update_outbox(
        self, record_id: str, destination: str, assignments: str, params: tuple[Any, ...]
    ) -> None:
        with self._transaction() as db:
            cursor = db.execute(
                f"""UPDATE outbox SET {assignments}
                    WHERE record_id=? AND destination=? AND state='pending'""",
                (*params, record_id, destination),
            )
            if cursor.rowcount != 1:
                raise KeyError(f"no pending outbox item {record_id} for {destination}")

    def delivered_at(self, record_id: str, destination: str) -> datetime | None:
        rows = self._query(
            "SELECT delivered_at FROM outbox WHERE record_id=? AND destination=?",
            (record_id, destination),
        )
        value = rows[0]["delivered_at"] if rows else None
        return None if value is None else _parse_time(value)

    # --- timeline ---------------------------------------------------------------------------

    def add_timeline(
        self,
        session_id: str,
        *,
        direction: Direction,
        message: str,
        at: datetime,
        response_code: str | None = None,
    ) -> int:
        """Append one message to the session's timeline; returns its sequence number (1..)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM timeline WHERE session_id=?",
                (session_id,),
            ).fetchone()
            seq = int(row[0])
            db.execute(
                "INSERT INTO timeline VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, seq, direction.value, message, response_code, _time(at)),
            )
        return seq

    def add_timeline_entries(self, entries: Sequence[TimelineEntry]) -> None:
        """Append a finished session's timeline in one transaction (the station keeps it in
        memory while the session runs); sequence numbers continue after those stored (a
        resumed session's second part follows its first)."""
        if not entries:
            return
        with self._transaction() as db:
            base: dict[str, int] = {}
            for entry in entries:
                if entry.session_id not in base:
                    row = db.execute(
                        "SELECT COALESCE(MAX(seq), 0) FROM timeline WHERE session_id=?",
                        (entry.session_id,),
                    ).fetchone()
                    base[entry.session_id] = int(row[0])
                base[entry.session_id] += 1
                db.execute(
                    "INSERT INTO timeline VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        entry.session_id,
                        base[entry.session_id],
                        entry.direction.value,
                        entry.message,
                        entry.response_code,
                        _time(entry.at),
                    ),
                )

    def timeline(self, session_id: str) -> list[TimelineEntry]:
        rows = self._query("SELECT * FROM timeline WHERE session_id=? ORDER BY seq", (session_id,))
        return [
            TimelineEntry(
                session_id=r["session_id"],
                seq=r["seq"],
                direction=Direction(r["direction"]),
                message=r["message"],
                response_code=r["response_code"],
                at=_parse_time(r["at"]),
            )
            for r in rows
        ]


def _optional_time(text: str | None) -> datetime | None:
    return None if text is None else _parse_time(text)


def _due_clauses(
    destination: str | None, after: datetime | None, *, prefix: str = "o."
) -> tuple[str, list[Any]]:
    clauses, params = "", []
    if destination is not None:
        clauses += f" AND {prefix}destination=?"
        params.append(destination)
    if after is not None:
        clauses += f" AND {prefix}next_attempt_at>?"
        params.append(_time(after))
    return clauses, params


def _json_reading(reading: MeterReading) -> str:
    return json.dumps(meter_reading_to_json(reading), sort_keys=True)


def _optional_reading(text: str | None) -> MeterReading | None:
    return None if text is None else meter_reading_from_json(json.loads(text))


def _open_session(row: sqlite3.Row) -> OpenSession:
    session = _session(row)
    resumed = row["part_started_at"] is not None
    return OpenSession(
        session=session,
        parts=int(row["parts"]),
        part_started_at=_parse_time(row["part_started_at"]) if resumed else session.started_at,
        part_meter_start=(
            _optional_reading(row["part_meter_start"]) if resumed else session.meter_start
        ),
        meter_last=_optional_reading(row["meter_last"]),
    )


def _session(row: sqlite3.Row) -> StoredSession:
    meter = row["meter_start"]
    return StoredSession(
        session_id=row["session_id"],
        evse_id=row["evse_id"],
        protocol=row["protocol"],
        state=SessionState(row["state"]),
        started_at=_parse_time(row["started_at"]),
        stopped_at=None if row["stopped_at"] is None else _parse_time(row["stopped_at"]),
        kind=None if row["kind"] is None else IdentificationKind(row["kind"]),
        contract_id=row["contract_id"],
        id_token=row["id_token"],
        meter_start=None if meter is None else meter_reading_from_json(json.loads(meter)),
        stop_reason=None if row["stop_reason"] is None else StopReason(row["stop_reason"]),
    )
