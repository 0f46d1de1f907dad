"""The payment processor hook: authorise at the start of a session, settle at its end.

A payment processor is where the money is: a card acquirer, the operator's billing system
reached over a webhook (`secc.billing.webhook.WebhookProcessor`), or a local prepaid ledger
(`secc.billing.ledger.PrepaidLedger`). The SECC

* asks `authorize` once the operator's backend accepted the identification (a contract ID
  from Plug & Charge, an external identification such as an RFID card, or a prepaid card's
  token): the processor may still refuse (no balance, card blocked, processor says no);
* hands every billing record to `settle` through the durable outbox of the session store
  (`secc.billing.outbox.DeliveryWorker`): the record is committed before the session is
  reported done, then delivered at least once, with its idempotency key, retried with
  back-off while the processor is down. A processor must treat a second `settle` with the
  same key as the first one (return the same result, charge nothing more): that is what
  makes at-least-once delivery exactly-once on the processor's side.

`settle` raises `DeliveryError` for a failure worth retrying (timeout, connection refused,
HTTP 5xx) and `RejectedRecord` for one that retrying cannot fix (the processor refuses the
record as malformed): the outbox holds such a record for the operator
(`iso15118 billing retry` releases it).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from secc.records import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
)

__all__ = [
    "DeliveryError",
    "FreeProcessor",
    "PaymentProcessor",
    "RejectedRecord",
    "Settlement",
    "idempotency_key",
]


class DeliveryError(Exception):
    """The processor could not take the record now; the outbox retries later."""


class RejectedRecord(DeliveryError):
    """The processor refused the record for good; the outbox holds it for the operator."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """The processor's acknowledgement of one billing record."""

    reference: str = ""  # the processor's own transaction or invoice reference
    duplicate: bool = False  # the processor had already settled this idempotency key


def idempotency_key(record: BillingRecord, destination: str) -> str:
    """One key per record and destination, stable across restarts and retries."""
    return f"{record.record_id}:{destination}"


class PaymentProcessor(abc.ABC):
    """Implement for your processor and name it in the configuration as ``module:Class``.

    `name` is the outbox destination its records are queued under; keep it stable (a
    renamed destination leaves the old name's pending records behind).
    """

    name: str = "payment"

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        """Pre-authorise payment for this identification. Default: accept."""
        return AuthorizationDecision(status=AuthorizationStatus.ACCEPTED, reason="no pre-auth")

    @abc.abstractmethod
    async def settle(self, record: BillingRecord, *, idempotency_key: str) -> Settlement:
        """Charge for `record`; idempotent on `idempotency_key`. Raise `DeliveryError` to
        be retried, `RejectedRecord` to hold the record for the operator."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Default: nothing."""


class FreeProcessor(PaymentProcessor):
    """No payment processor: every record is settled at once, as free charging."""

    name = "payment"

    async def settle(self, record: BillingRecord, *, idempotency_key: str) -> Settlement:
        return Settlement(reference="free")
