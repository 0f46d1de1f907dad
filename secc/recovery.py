"""Crash recovery: bill and close the sessions a killed charger process left open.

A session's billing record is built when the session ends; if the SECC process dies while a
car charges (kill -9, power cut, crash), the energy delivered so far has no record. On the
next start, before the servers listen, the station (`secc.station.Station.start`) closes
every session the store still shows active or paused (`SessionStore.open_sessions`):

* a session whose current part has no record yet (the store counts its parts: 1, plus one
  per resumption) gets one, `StopReason.EVSE_RESTARTED`, from the part's first meter reading
  to the latest reading known: the controller's present reading if it comes from the same
  meter (`meter_id`) and is above the last reading the station persisted
  (`SessionStore.session_meter`), else that persisted reading (a meter replaced or reset
  while the charger was down is not trusted). The controller's reading counts only for the
  newest open session of its EVSE. It stops at that reading's time and is priced under the
  EVSE's tariff as the session would have been (the fee with the first part only);
* a session whose current part is billed already (the process died between committing the
  record and writing the session's end, or the session was paused: a paused session is kept
  in memory only, so its car cannot resume it after a restart) gets no second record.

Then the session is marked ended. The record is committed first (`record_billing`, with its
outbox row) and the session closed second; the record's ID is derived from the SessionID and
the part, and `record_billing` is idempotent on it, so a process killed again during
recovery recovers the same record once more, never a second one.

`plan` is the pure core (it reads no clock: every time comes from the store's rows and the
meter readings); `recover` runs it against the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from secc.records import BillingRecord, IdentificationKind, MeterReading, StopReason
from secc.store import OpenSession, SessionState
from secc.tariff import Tariff

__all__ = ["Closing", "EvseNow", "RecoveryStore", "plan", "record_id", "recover"]

logger = logging.getLogger("secc.recovery")


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseNow:
    """What the restarted station knows of one EVSE: its tariff and its meter's present
    reading (None: the controller has no meter or could not be read)."""

    tariff: Tariff | None
    meter: MeterReading | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Closing:
    """How to close one open session: commit `record` (None: nothing left to bill), then
    mark the session ended at `ended_at` for `reason`."""

    session_id: str
    record: BillingRecord | None
    ended_at: datetime
    reason: StopReason


def record_id(session_id: str, part: int) -> str:
    """The ID of the record recovery bills for `part` of the session (32 hex digits, like a
    session's own records): the same whenever it is derived."""
    digest = hashlib.sha256(f"secc.recovery|{session_id.upper()}|{part:d}".encode())
    return digest.hexdigest()[:32]


def plan(
    open_session: OpenSession,
    *,
    billed: Sequence[BillingRecord],
    evse: EvseNow | None,
) -> Closing:
    """How to close `open_session` (module docstring). `billed`: the session's records in
    the store; `evse`: its EVSE now (None: the EVSE is no longer configured: no tariff, no
    present reading)."""
    session = open_session.session
    if len(billed) >= open_session.parts:  # the current part is billed already
        last = billed[-1]
        if session.state is SessionState.PAUSED or last.stop_reason is StopReason.EV_PAUSED:
            return Closing(
                session_id=session.session_id,
                record=None,
                ended_at=session.stopped_at or last.stopped_at,
                reason=StopReason.EVSE_RESTARTED,
            )
        return Closing(
            session_id=session.session_id,
            record=None,
            ended_at=last.stopped_at,
            reason=last.stop_reason,
        )
    fee_charged = any(r.price is not None and r.price.charged_fee for r in billed)
    record = _record(open_session, evse, with_fee=not fee_charged)
    return Closing(
        session_id=session.session_id,
        record=record,
        ended_at=record.stopped_at,
        reason=StopReason.EVSE_RESTARTED,
    )


def _record(open_session: OpenSession, evse: EvseNow | None, *, with_fee: bool) -> BillingRecord:
    session = open_session.session
    start = open_session.part_meter_start
    started_at = open_session.part_started_at
    stop = _stop_reading(start, open_session.meter_last, None if evse is None else evse.meter)
    if stop is not None:
        stopped_at = max(started_at, stop.at)
    elif open_session.meter_last is not None and _aware(open_session.meter_last):
        stopped_at = max(started_at, open_session.meter_last.at)
    else:
        stopped_at = started_at
    record = BillingRecord(
        record_id=record_id(session.session_id, open_session.parts),
        session_id=session.session_id,
        evse_id=session.evse_id,
        protocol=session.protocol,
        kind=session.kind or IdentificationKind.EXTERNAL,
        contract_id=session.contract_id,
        id_token=session.id_token,
        started_at=started_at,
        stopped_at=stopped_at,
        meter_start=start,
        meter_stop=stop,
        stop_reason=StopReason.EVSE_RESTARTED,
    )
    tariff = None if evse is None else evse.tariff
    if tariff is None:
        return record
    price = tariff.price(record.energy_wh, started_at, stopped_at, with_fee=with_fee)
    return dataclasses.replace(record, price=price)


def _stop_reading(
    start: MeterReading | None, last: MeterReading | None, present: MeterReading | None
) -> MeterReading | None:
    """The reading to bill up to: the persisted one, or the controller's present one if it
    is from the same meter and higher; None without a start reading (nothing to bill from)."""
    if start is None:
        return None
    best = start
    if last is not None and _same_meter(start, last) and last.energy_wh >= best.energy_wh:
        best = last
    if present is not None and _same_meter(start, present) and present.energy_wh > best.energy_wh:
        best = present
    return best


def _same_meter(start: MeterReading, reading: MeterReading) -> bool:
    return reading.meter_id == start.meter_id and _aware(reading)


def _aware(reading: MeterReading) -> bool:
    return reading.at.tzinfo is not None and reading.at.utcoffset() is not None


# --- the edge: the store -------------------------------------------------------------------


class RecoveryStore(Protocol):
    """What recovery needs of `secc.store.SessionStore`."""

    def open_sessions(self) -> list[OpenSession]: ...

    def billing_records(
        self, *, session_id: str | None = None, since: datetime | None = None, limit: int = 1000
    ) -> list[BillingRecord]: ...

    def record_billing(self, record: BillingRecord) -> bool: ...

    def session_ended(self, session_id: str, *, at: datetime, reason: StopReason) -> None: ...


def recover(store: RecoveryStore, evses: Mapping[str, EvseNow]) -> list[Closing]:
    """Close every session `store` shows open (module docstring); returns what was done.
    `evses`: the station's EVSEs by EVSEID. Synchronous (short store transactions): run it
    before the servers listen."""
    opened = store.open_sessions()
    newest: dict[str, str] = {}  # EVSEID -> its newest open session: the meter's last user
    for item in opened:  # oldest first
        newest[item.session.evse_id] = item.session.session_id
    done = []
    for item in opened:
        session = item.session
        evse = evses.get(session.evse_id)
        if evse is not None and newest[session.evse_id] != session.session_id:
            evse = EvseNow(tariff=evse.tariff, meter=None)
        elif evse is None:
            logger.warning(
                "session %s was on EVSE %s, which is not configured any more: billed "
                "without a tariff",
                session.session_id,
                session.evse_id,
                extra={"session_id": session.session_id},
            )
        billed = store.billing_records(session_id=session.session_id, limit=1_000_000)
        closing = plan(item, billed=billed, evse=evse)
        if closing.record is not None:
            store.record_billing(closing.record)  # first: killed here, the next run redoes it
        store.session_ended(session.session_id, at=closing.ended_at, reason=closing.reason)
        _log(item, closing)
        done.append(closing)
    return done


def _log(item: OpenSession, closing: Closing) -> None:
    extra = {"session_id": closing.session_id}
    state = item.session.state.value
    record = closing.record
    if record is None:
        logger.info(
            "session left %s by the previous run closed (%s); its billing record was stored "
            "already",
            state,
            closing.reason.value,
            extra=extra,
        )
        return
    stop = record.meter_stop
    logger.warning(
        "session left %s by the previous run billed on restart: record %s, %d Wh up to "
        "%s (part %d)",
        state,
        record.record_id,
        record.energy_wh,
        "no meter reading" if stop is None else f"the reading of {stop.at.isoformat()}",
        item.parts,
        extra=extra,
    )
