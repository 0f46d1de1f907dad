"""The delivery worker: hands the billing records queued in the store's outbox to the payment
processors, at least once, each with its idempotency key.

The contract (see `secc.payment`):

* a record is in the outbox before anyone hears of it (`SessionStore.record_billing`);
* `settle` returned -> `mark_delivered` (with the processor's reference); `RejectedRecord` ->
  `mark_held` (an operator looks at it); `DeliveryError`, a timeout or any other exception ->
  `mark_failed`, due again after the back-off (`secc.billing.backoff.Backoff`);
* a crash between `settle` and `mark_delivered` leaves the item pending: it is delivered again
  after the restart with the *same* idempotency key, and the processor recognises it. That is
  why delivery is at least once here and exactly once on the processor's side.

One pass (`deliver_due`) takes every due item, oldest first, one at a time per destination
(destinations side by side). After a failed attempt the destination pauses until that item's
retry time: items that were already due wait instead of each timing out in turn against a
processor that is down, while items queued after the failure (a new session's record, an
operator's `iso15118 billing retry`) are still tried at once. Any answer from the processor
ends the pause.

`run` repeats passes until `stop()` (or cancellation): it sleeps until the next item is due, a
`wake()` (the server calls it right after storing a record) or `poll_interval` seconds, so that
a release by ``iso15118 billing retry`` in another process is seen.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Protocol

from secc.billing.backoff import Backoff
from secc.payment import (
    DeliveryError,
    PaymentProcessor,
    RejectedRecord,
    Settlement,
    idempotency_key,
)
from secc.store import OutboxItem

__all__ = [
    "AttemptOutcome",
    "DeliveryAttempt",
    "DeliveryPass",
    "DeliveryWorker",
    "OutboxStore",
]

log = logging.getLogger(__name__)

MAX_ERROR_TEXT = 500  # characters of an error kept in the store


class OutboxStore(Protocol):
    """What the worker needs of `secc.store.SessionStore`."""

    def pending_outbox(
        self,
        now: datetime,
        *,
        destination: str | None = None,
        after: datetime | None = None,
        limit: int = 100,
    ) -> list[OutboxItem]: ...

    def next_due(
        self, *, destination: str | None = None, after: datetime | None = None
    ) -> datetime | None: ...

    def pending_destinations(self) -> list[str]: ...

    def mark_delivered(
        self, record_id: str, destination: str, *, at: datetime, reference: str = ""
    ) -> None: ...

    def mark_failed(
        self, record_id: str, destination: str, *, error: str, retry_at: datetime
    ) -> None: ...

    def mark_held(self, record_id: str, destination: str, *, error: str, at: datetime) -> None: ...


class AttemptOutcome(Enum):
    DELIVERED = "delivered"
    FAILED = "failed"  # to be retried after the back-off
    HELD = "held"  # refused for good by the processor


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryAttempt:
    """One `settle` call and what the worker made of it."""

    record_id: str
    destination: str
    session_id: str
    outcome: AttemptOutcome
    reference: str = ""
    duplicate: bool = False  # the processor had settled this key before
    error: str | None = None
    retry_at: datetime | None = None  # FAILED: when it is due again
    marked: bool = True  # False: the item had left the pending state meanwhile (another
    # process delivered it), so the store was left as it was


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPass:
    """What one `deliver_due` did."""

    attempts: tuple[DeliveryAttempt, ...] = ()
    unserved: tuple[str, ...] = ()  # destinations with pending items but no processor

    def _with(self, outcome: AttemptOutcome) -> list[DeliveryAttempt]:
        return [a for a in self.attempts if a.outcome is outcome]

    @property
    def delivered(self) -> list[DeliveryAttempt]:
        return self._with(AttemptOutcome.DELIVERED)

    @property
    def failed(self) -> list[DeliveryAttempt]:
        return self._with(AttemptOutcome.FAILED)

    @property
    def held(self) -> list[DeliveryAttempt]:
        return self._with(AttemptOutcome.HELD)


@dataclass(frozen=True, slots=True)
class _Pause:
    since: datetime  # the failure; items due later than this are not held back
    until: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


class DeliveryWorker:
    """Delivers the outbox of `store` to `processors` (keyed by destination name, i.e.
    `PaymentProcessor.name`). `clock` gives timezone-aware wall-clock times; `timeout` bounds
    each `settle` call (seconds); `random` feeds the back-off's jitter."""

    def __init__(
        self,
        store: OutboxStore,
        processors: Mapping[str, PaymentProcessor],
        *,
        clock: Callable[[], datetime] = _utc_now,
        backoff: Backoff | None = None,
        timeout: float = 30.0,
        poll_interval: float = 5.0,
        random: Callable[[], float] = _random.random,
        batch: int = 100,
    ) -> None:
        if timeout <= 0 or poll_interval <= 0 or batch < 1:
            raise ValueError("timeout and poll_interval must be > 0 and batch >= 1")
        self.store = store
        self.processors = dict(processors)
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.random = random
        self.batch = batch
        self._pauses: dict[str, _Pause] = {}
        self._unserved_logged: set[str] = set()
        self._pass_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        #: called with every attempt once its outcome is stored (metrics, the operator's view)
        self.observers: list[Callable[[DeliveryAttempt], None]] = []

    # --- one pass ---------------------------------------------------------------------------

    async def deliver_due(self, now: datetime) -> DeliveryPass:
        """Try every item due at `now`: oldest first, one at a time per destination."""
        async with self._pass_lock:
            served, unserved = [], []
            for destination in self.store.pending_destinations():
                if destination in self.processors:
                    served.append(destination)
                else:
                    unserved.append(destination)
                    if destination not in self._unserved_logged:
                        self._unserved_logged.add(destination)
                        log.warning(
                            "outbox: records pending for destination %r, which has no "
                            "payment processor configured; they stay pending",
                            destination,
                        )
            results = await asyncio.gather(
                *(self._deliver_destination(d, now) for d in served), return_exceptions=True
            )
            attempts: list[DeliveryAttempt] = []
            errors: list[BaseException] = []
            for result in results:
                if isinstance(result, BaseException):
                    errors.append(result)
                else:
                    attempts.extend(result)
            for attempt in attempts:
                for observer in self.observers:
                    try:
                        observer(attempt)
                    except Exception:
                        log.exception("outbox: delivery observer failed")
            if errors:
                raise errors[0]
            return DeliveryPass(attempts=tuple(attempts), unserved=tuple(unserved))

    async def _deliver_destination(self, destination: str, now: datetime) -> list[DeliveryAttempt]:
        processor = self.processors[destination]
        attempts: list[DeliveryAttempt] = []
        seen: set[str] = set()
        while True:
            pause = self._active_pause(destination, now)
            items = self.store.pending_outbox(
                now,
                destination=destination,
                after=None if pause is None else pause.since,
                limit=self.batch,
            )
            fresh = [item for item in items if item.record_id not in seen]
            if not fresh:
                return attempts
            for item in fresh:
                seen.add(item.record_id)
                attempt = await self._attempt(item, processor)
                attempts.append(attempt)
                if attempt.outcome is AttemptOutcome.FAILED:
                    assert attempt.retry_at is not None
                    self._pause(destination, attempt.retry_at)
                    return attempts
                self._pauses.pop(destination, None)  # it answered: it is up

    def _active_pause(self, destination: str, now: datetime) -> _Pause | None:
        pause = self._pauses.get(destination)
        if pause is not None and now >= pause.until:
            del self._pauses[destination]
            return None
        return pause

    def _pause(self, destination: str, until: datetime) -> None:
        previous = self._pauses.get(destination)
        if previous is not None:
            until = max(until, previous.until)
        self._pauses[destination] = _Pause(since=self.clock(), until=until)

    async def _attempt(self, item: OutboxItem, processor: PaymentProcessor) -> DeliveryAttempt:
        record, destination = item.record, item.destination
        extra = {"session_id": record.session_id}
        key = idempotency_key(record, destination)
        try:
            async with asyncio.timeout(self.timeout):
                settlement = await processor.settle(record, idempotency_key=key)
            if not isinstance(settlement, Settlement):
                raise DeliveryError(
                    f"{type(processor).__name__}.settle returned "
                    f"{type(settlement).__name__}, not a Settlement"
                )
        except RejectedRecord as exc:
            error = _short(f"rejected: {exc}" if str(exc) else "rejected")
            return self._held(item, error, extra)
        except DeliveryError as exc:
            error = _short(str(exc) or type(exc).__name__)
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except Exception as exc:  # a broken processor must not stop the worker
            log.exception(
                "outbox: %s failed delivering record %s",
                type(processor).__name__,
                record.record_id,
                extra=extra,
            )
            error = _short(f"{type(exc).__name__}: {exc}")
        else:
            return self._delivered(item, settlement, extra)
        return self._failed(item, error, extra)

    def _delivered(
        self, item: OutboxItem, settlement: Settlement, extra: dict[str, str]
    ) -> DeliveryAttempt:
        marked = self._mark(
            item,
            extra,
            lambda: self.store.mark_delivered(
                item.record_id, item.destination, at=self.clock(), reference=settlement.reference
            ),
        )
        log.info(
            "billing record %s delivered to %s (reference %r%s)",
            item.record_id,
            item.destination,
            settlement.reference,
            ", a duplicate" if settlement.duplicate else "",
            extra=extra,
        )
        return DeliveryAttempt(
            record_id=item.record_id,
            destination=item.destination,
            session_id=item.record.session_id,
            outcome=AttemptOutcome.DELIVERED,
            reference=settlement.reference,
            duplicate=settlement.duplicate,
            marked=marked,
        )

    def _failed(self, item: OutboxItem, error: str, extra: dict[str, str]) -> DeliveryAttempt:
        failures = item.attempts + 1
        retry_at = self.clock() + timedelta(seconds=self.backoff.delay(failures, self.random))
        marked = self._mark(
            item,
            extra,
            lambda: self.store.mark_failed(
                item.record_id, item.destination, error=error, retry_at=retry_at
            ),
        )
        log.warning(
            "billing record %s not delivered to %s (attempt %d): %s; next attempt at %s",
            item.record_id,
            item.destination,
            failures,
            error,
            retry_at.isoformat(timespec="seconds"),
            extra=extra,
        )
        return DeliveryAttempt(
            record_id=item.record_id,
            destination=item.destination,
            session_id=item.record.session_id,
            outcome=AttemptOutcome.FAILED,
            error=error,
            retry_at=retry_at,
            marked=marked,
        )

    def _held(self, item: OutboxItem, error: str, extra: dict[str, str]) -> DeliveryAttempt:
        marked = self._mark(
            item,
            extra,
            lambda: self.store.mark_held(
                item.record_id, item.destination, error=error, at=self.clock()
            ),
        )
        log.error(
            "billing record %s refused by %s, held for an operator "
            "(iso15118 billing show/retry): %s",
            item.record_id,
            item.destination,
            error,
            extra=extra,
        )
        return DeliveryAttempt(
            record_id=item.record_id,
            destination=item.destination,
            session_id=item.record.session_id,
            outcome=AttemptOutcome.HELD,
            error=error,
            marked=marked,
        )

    @staticmethod
    def _mark(item: OutboxItem, extra: dict[str, str], mark: Callable[[], None]) -> bool:
        try:
            mark()
        except KeyError:
            log.warning(
                "outbox item %s for %s is no longer pending (delivered or held by another "
                "process meanwhile); left as it is",
                item.record_id,
                item.destination,
                extra=extra,
            )
            return False
        return True

    # --- the loop ---------------------------------------------------------------------------

    def next_due(self, now: datetime) -> datetime | None:
        """When the next item of a served destination is due (taking pauses into account);
        None if nothing is pending."""
        times: list[datetime] = []
        for destination in self.processors:
            pause = self._active_pause(destination, now)
            due = self.store.next_due(
                destination=destination, after=None if pause is None else pause.since
            )
            if due is not None:
                times.append(due)
            if pause is not None:
                times.append(pause.until)  # the items held back by the pause
        return min(times, default=None)

    def sleep_time(self, now: datetime, *, idle: bool = False) -> float:
        """Seconds to sleep before the next pass: until the next due item, at most
        `poll_interval`. `idle`: the last pass tried nothing, so an item still "due" is one
        it cannot take (changed by another process, clock stepped back): poll instead of
        spinning."""
        due = self.next_due(now)
        if due is None:
            return self.poll_interval
        delay = min(max((due - now).total_seconds(), 0.0), self.poll_interval)
        return self.poll_interval if idle and delay == 0.0 else delay

    def wake(self) -> None:
        """Run a pass now (a record was just stored)."""
        self._wake.set()

    def stop(self) -> None:
        """End `run` after the current attempt."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until `stop()` or cancellation. A pass that fails (the store cannot be
        written) is logged and tried again after `poll_interval`."""
        self._stopping = False
        while not self._stopping:
            self._wake.clear()
            idle = True
            try:
                done = await self.deliver_due(self.clock())
                idle = not done.attempts
                delay = self.sleep_time(self.clock(), idle=idle)
            except Exception:
                log.exception("outbox: delivery pass failed; trying again later")
                delay = self.poll_interval
            if self._stopping:
                break
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
