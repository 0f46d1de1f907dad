"""A local prepaid ledger, as a card-based site runs it: balances, top-ups, refusal at zero.

`PrepaidLedger` is a `secc.payment.PaymentProcessor` with its own SQLite file (WAL,
``synchronous=FULL``: a committed top-up or charge survives a power cut):

* an **account** is an identification: the eMAID of a Plug & Charge contract or the token
  of an RFID card / id token (`account_key` normalises both: upper case, no spaces or
  hyphens; an eMAID without its check digit, as `secc.backend.LocalBackend` matches them),
  with a balance in the minor unit of its currency (cents for EUR);
* **entries** record every top-up (positive) and every charge (negative) with the balance
  after it; a charge carries the billing record's idempotency key, UNIQUE in the table, so
  that a `settle` repeated with the same key (the outbox delivers at least once) charges
  once and answers ``Settlement(duplicate=True)`` with the first charge's reference;
* `authorize` refuses an unknown account and an account whose balance is at or below zero
  (the reason names the balance);
* `settle` debits the record's price total (a record without a price charges 0 and is still
  entered). The balance may go below zero: the energy was delivered and is owed; the next
  `authorize` refuses until the account is topped up again. A record with no identification,
  of an unknown account, in another currency or with an amount finer than the currency's
  minor unit is refused for good (`RejectedRecord`: the outbox holds it for the operator,
  who may create the account and release it). A database that is locked or failing raises
  `DeliveryError` (retried).

Configure it as the billing processor (`secc.billing.config`)::

    billing:
      processor:
        class: "secc.billing.ledger:PrepaidLedger"
        options: {ledger_file: ledger.db, currency: EUR}

and manage it with ``iso15118 ledger --ledger FILE topup|balance|history``
(`secc.billing.ledger_commands`). Several processes may use one file (SQLite locking); in
one process the blocking SQLite calls of `authorize` and `settle` run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from pki.emaid import parse_emaid
from pki.errors import EmaidCheckDigitError, EmaidError
from secc.backend import normalise_emaid
from secc.payment import DeliveryError, PaymentProcessor, RejectedRecord, Settlement
from secc.records import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
    IdentificationKind,
)
from secc.tariff import CURRENCY_EXPONENTS

__all__ = [
    "Account",
    "EntryKind",
    "LedgerEntry",
    "LedgerError",
    "LedgerUnavailable",
    "PrepaidLedger",
    "account_key",
    "format_amount",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
_MAX_MINOR: Final = 2**62  # far beyond any balance; keeps SQLite's 64-bit integers safe

_SCHEMA: Final = (
    """CREATE TABLE accounts (
        account TEXT PRIMARY KEY,
        currency TEXT NOT NULL,
        balance INTEGER NOT NULL,          -- minor units (cents), may be negative
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE entries (
        entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL REFERENCES accounts(account),
        kind TEXT NOT NULL CHECK (kind IN ('top-up', 'charge')),
        amount INTEGER NOT NULL,           -- minor units: + top-up, - charge
        balance_after INTEGER NOT NULL,
        idempotency_key TEXT UNIQUE,       -- a charge's key (NULL allowed for top-ups)
        record_id TEXT,
        session_id TEXT,
        note TEXT NOT NULL DEFAULT '',
        at TEXT NOT NULL
    )""",
    "CREATE INDEX entries_by_account ON entries (account, entry_id)",
)


class LedgerError(ValueError):
    """A ledger operation that cannot be done: a bad amount, an unknown account, a file that
    is not a ledger. The message says which."""


class LedgerUnavailable(LedgerError):
    """The ledger file could not be read or written now (locked too long, I/O error)."""


class EntryKind(Enum):
    TOP_UP = "top-up"
    CHARGE = "charge"


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    account: str
    currency: str
    balance: Decimal  # in currency units, e.g. Decimal("12.34"); may be negative
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    entry_id: int
    account: str
    kind: EntryKind
    amount: Decimal  # + top-up, - charge
    balance_after: Decimal
    currency: str
    at: datetime
    idempotency_key: str | None = None
    record_id: str | None = None
    session_id: str | None = None
    note: str = ""

    @property
    def reference(self) -> str:
        return f"ledger-{self.entry_id}"


def account_key(identification: str) -> str:
    """The account an eMAID or a card token is kept under: upper case without spaces or
    hyphens (`secc.backend.normalise_emaid`); an eMAID without its check digit, so that
    ``DE-ABC-C12345678-9`` and ``DEABCC12345678`` are one account. LedgerError if empty."""
    if not isinstance(identification, str) or not identification.strip():
        raise LedgerError("an account needs an identification (eMAID or card token)")
    key = normalise_emaid(identification)
    try:
        parse_emaid(identification, require_check_digit=False)
    except EmaidCheckDigitError:  # eMAID syntax; the check digit is not what identifies it
        key = key[:14]
    except EmaidError:
        pass  # a card token: kept whole
    else:
        key = key[:14]
    if not key.isprintable() or len(key) > 255:
        raise LedgerError(f"{identification[:40]!r} is not a usable identification")
    return key


def _exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise LedgerError(f"currency {currency!r} is not a known ISO 4217 code") from None


def _to_minor(amount: Decimal, currency: str, what: str) -> int:
    """`amount` in whole minor units of `currency`; LedgerError if finer or not finite."""
    if not amount.is_finite():
        raise LedgerError(f"{what} {amount} is not a finite amount")
    exponent = _exponent(currency)
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise LedgerError(f"{what} {amount} has more decimals than {currency} has ({exponent})")
    minor = int(scaled)
    if abs(minor) >= _MAX_MINOR:
        raise LedgerError(f"{what} {amount} is too large")
    return minor


def _from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-_exponent(currency))


def format_amount(amount: Decimal, currency: str) -> str:
    """``EUR 12.34`` (the currency's minor digits, minus sign before the number)."""
    places = _exponent(currency)
    return f"{currency} {amount:.{places}f}"


def parse_amount(text: str | Decimal) -> Decimal:
    """An amount given as text (``"20"``, ``"12.50"``); LedgerError if it is not one."""
    if isinstance(text, Decimal):
        return text
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise LedgerError(f"{str(text)[:40]!r} is not an amount") from None
    if not value.is_finite():
        raise LedgerError(f"{text!r} is not a finite amount")
    return value


def _time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class PrepaidLedger(PaymentProcessor):
    """See the module docstring. `ledger_file` is created if missing (unless `create` is
    False); `currency` is the currency of accounts created by a top-up that names none;
    `busy_timeout` how long to wait for another process's write (seconds)."""

    def __init__(
        self,
        ledger_file: str | Path,
        *,
        currency: str = "EUR",
        name: str = "payment",
        create: bool = True,
        busy_timeout: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = Path(ledger_file)
        self.name = name
        self.currency = currency.strip().upper() if isinstance(currency, str) else currency
        _exponent(self.currency)
        self._clock = clock
        self._lock = threading.Lock()
        if not create and not self.path.exists():
            raise LedgerError(f"no ledger at {self.path}")
        try:
            self._db = sqlite3.connect(
                str(self.path),
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout,
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._open()
        except (sqlite3.Error, LedgerError) as exc:
            self._db.close()
            if isinstance(exc, LedgerError):
                raise
            raise LedgerError(f"{self.path} is not a usable ledger: {exc}") from None

    def _open(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LedgerError(f"ledger {self.path}: cannot use WAL (got {mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return  # an existing ledger: no write needed to open it
        with self._transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:
                tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise LedgerError(f"{self.path} is an SQLite file but not a ledger")
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION:d}")
            elif version != SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {self.path} has schema version {version}; this program knows "
                    f"{SCHEMA_VERSION}"
                )

    # --- the operator's side ---------------------------------------------------------------------

    def top_up(
        self,
        account: str,
        amount: Decimal | str,
        *,
        currency: str | None = None,
        note: str = "",
        idempotency_key: str | None = None,
    ) -> LedgerEntry:
        """Credit `amount` (> 0) to `account`, creating it (in `currency`, else the ledger's)
        if new. With an `idempotency_key`, a repeated top-up credits once (and returns the
        first entry). LedgerError for a bad amount or a currency other than the account's."""
        key = account_key(account)
        value = parse_amount(amount)
        if value <= 0:
            raise LedgerError(f"a top-up must be positive, got {value}")
        now = self._clock()
        with self._transaction() as db:
            if idempotency_key is not None:
                done = self._entry_by_key(db, idempotency_key)
                if done is not None:
                    return done
            row = db.execute(
                "SELECT currency, balance FROM accounts WHERE account = ?", (key,)
            ).fetchone()
            if row is None:
                account_currency = (currency or self.currency).strip().upper()
                balance = 0
                minor = _to_minor(value, account_currency, "top-up")
                db.execute(
                    "INSERT INTO accounts (account, currency, balance, created_at, updated_at)"
                    " VALUES (?, ?, 0, ?, ?)",
                    (key, account_currency, _time(now), _time(now)),
                )
            else:
                account_currency, balance = row[0], int(row[1])
                if currency is not None and currency.strip().upper() != account_currency:
                    raise LedgerError(
                        f"account {key} is kept in {account_currency}, not {currency}"
                    )
                minor = _to_minor(value, account_currency, "top-up")
            if abs(balance + minor) >= _MAX_MINOR:
                raise LedgerError(f"top-up {value}: the balance would be too large")
            entry = self._enter(
                db, key, EntryKind.TOP_UP, minor, balance + minor, now,
                idempotency_key=idempotency_key, note=note,
            )  # fmt: skip
        log.info(
            "top-up %s: %s", key, format_amount(entry.amount, entry.currency),
            extra={"session_id": "-"},
        )  # fmt: skip
        return entry

    def balance(self, account: str) -> Account:
        """The account's balance; LedgerError for an unknown account."""
        key = account_key(account)
        rows = self._query(
            "SELECT account, currency, balance, updated_at FROM accounts WHERE account = ?",
            (key,),
        )
        if not rows:
            raise LedgerError(f"unknown prepaid account {key}")
        return _account(rows[0])

    def accounts(self) -> list[Account]:
        """Every account, by identification."""
        rows = self._query(
            "SELECT account, currency, balance, updated_at FROM accounts ORDER BY account"
        )
        return [_account(row) for row in rows]

    def history(self, account: str, *, limit: int | None = None) -> list[LedgerEntry]:
        """The account's entries, oldest first (the last `limit` ones if given);
        LedgerError for an unknown account."""
        key = account_key(account)
        self.balance(key)  # unknown -> LedgerError
        if limit is not None and limit < 1:
            raise LedgerError(f"limit must be at least 1, got {limit}")
        rows = self._query(
            f"SELECT e.*, a.currency FROM entries e JOIN accounts a USING (account) "
            f"WHERE account = ? ORDER BY entry_id DESC LIMIT {limit if limit else -1:d}",
            (key,),
        )
        return [_entry(row) for row in reversed(rows)]

    # --- the payment processor -------------------------------------------------------------------

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        """Accept an account with a positive balance; refuse an unknown one, one at or below
        zero, and a session without identification."""
        identification = _identification(request.kind, request.contract_id, request.id_token)
        if identification is None:
            return _refuse("no identification to charge a prepaid account")
        try:
            account = await asyncio.to_thread(self.balance, identification)
        except LedgerUnavailable as exc:
            log.warning("%s", exc)
            return AuthorizationDecision(status=AuthorizationStatus.UNAVAILABLE, reason=str(exc))
        except LedgerError as exc:
            return _refuse(str(exc))
        shown = format_amount(account.balance, account.currency)
        if account.balance <= 0:
            return _refuse(f"prepaid balance {shown}: top up first")
        return AuthorizationDecision(
            status=AuthorizationStatus.ACCEPTED, reason=f"prepaid balance {shown}"
        )

    async def settle(self, record: BillingRecord, *, idempotency_key: str) -> Settlement:
        """Debit the record's price total, once per `idempotency_key` (see the module doc)."""
        return await asyncio.to_thread(self.charge, record, idempotency_key=idempotency_key)

    def charge(self, record: BillingRecord, *, idempotency_key: str) -> Settlement:
        """`settle` without the thread hop (for synchronous callers and tests)."""
        identification = _identification(record.kind, record.contract_id, record.id_token)
        extra = {"session_id": record.session_id}
        if identification is None:
            raise RejectedRecord(f"record {record.record_id} names no prepaid account")
        if not idempotency_key:
            raise RejectedRecord("a charge needs an idempotency key")
        try:
            key = account_key(identification)
        except LedgerError as exc:
            raise RejectedRecord(str(exc)) from None
        now = self._clock()
        try:
            with self._transaction() as db:
                done = self._entry_by_key(db, idempotency_key)
                if done is not None:
                    log.info("charge %s already entered", idempotency_key, extra=extra)
                    return Settlement(reference=done.reference, duplicate=True)
                row = db.execute(
                    "SELECT currency, balance FROM accounts WHERE account = ?", (key,)
                ).fetchone()
                if row is None:
                    raise RejectedRecord(f"unknown prepaid account {key}")
                currency, balance = row[0], int(row[1])
                minor = self._amount(record, currency)
                entry = self._enter(
                    db, key, EntryKind.CHARGE, -minor, balance - minor, now,
                    idempotency_key=idempotency_key, record_id=record.record_id,
                    session_id=record.session_id,
                )  # fmt: skip
        except sqlite3.IntegrityError:
            # another connection entered the same key between our look-up and insert
            done = self._lookup_key(idempotency_key)
            if done is None:
                raise DeliveryError("ledger: conflicting write, try again") from None
            return Settlement(reference=done.reference, duplicate=True)
        except LedgerUnavailable as exc:
            raise DeliveryError(str(exc)) from None
        log.info(
            "charged %s %s, balance %s",
            key,
            format_amount(-entry.amount, currency),
            format_amount(entry.balance_after, currency),
            extra=extra,
        )
        return Settlement(reference=entry.reference)

    @staticmethod
    def _amount(record: BillingRecord, currency: str) -> int:
        price = record.price
        if price is None:
            return 0
        if price.currency != currency:
            raise RejectedRecord(
                f"record {record.record_id} is priced in {price.currency}, "
                f"the account is kept in {currency}"
            )
        try:
            minor = _to_minor(price.total, currency, "price total")
        except LedgerError as exc:
            raise RejectedRecord(f"record {record.record_id}: {exc}") from None
        if minor < 0:
            raise RejectedRecord(f"record {record.record_id}: negative price {price.total}")
        return minor

    async def close(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> PrepaidLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_now()

    # --- SQLite ----------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (fsynced), ROLLBACK on any error. SQLite failures
        surface as LedgerUnavailable, except IntegrityError (a UNIQUE key raced)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise LedgerUnavailable(f"ledger {self.path}: {exc}") from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                    raise LedgerUnavailable(f"ledger {self.path}: {exc}") from None
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return list(self._db.execute(sql, tuple(params)).fetchall())
            except sqlite3.Error as exc:
                raise LedgerUnavailable(f"ledger {self.path}: {exc}") from None

    def _enter(
        self,
        db: sqlite3.Connection,
        account: str,
        kind: EntryKind,
        minor: int,
        balance_after: int,
        at: datetime,
        *,
        idempotency_key: str | None = None,
        record_id: str | None = None,
        session_id: str | None = None,
        note: str = "",
    ) -> LedgerEntry:
        cursor = db.execute(
            "INSERT INTO entries (account, kind, amount, balance_after, idempotency_key,"
            " record_id, session_id, note, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                account, kind.value, minor, balance_after, idempotency_key, record_id,
                session_id, note, _time(at),
            ),
        )  # fmt: skip
        db.execute(
            "UPDATE accounts SET balance = ?, updated_at = ? WHERE account = ?",
            (balance_after, _time(at), account),
        )
        entry_id = cursor.lastrowid
        assert entry_id is not None
        row = db.execute(
            "SELECT e.*, a.currency FROM entries e JOIN accounts a USING (account) "
            "WHERE entry_id = ?",
            (entry_id,),
        ).fetchone()
        return _entry(row)

    def _entry_by_key(self, db: sqlite3.Connection, key: str) -> LedgerEntry | None:
        row = db.execute(
            "SELECT e.*, a.currency FROM entries e JOIN accounts a USING (account) "
            "WHERE idempotency_key = ?",
            (key,),
        ).fetchone()
        return None if row is None else _entry(row)

    def _lookup_key(self, key: str) -> LedgerEntry | None:
        with self._lock:
            try:
                return self._entry_by_key(self._db, key)
            except sqlite3.Error as exc:
                raise LedgerUnavailable(f"ledger {self.path}: {exc}") from None


def _identification(
    kind: IdentificationKind, contract_id: str | None, id_token: str | None
) -> str | None:
    value = contract_id if kind is IdentificationKind.CONTRACT else id_token
    return value if value and value.strip() else None


def _refuse(reason: str) -> AuthorizationDecision:
    return AuthorizationDecision(status=AuthorizationStatus.REJECTED, reason=reason)


def _account(row: sqlite3.Row) -> Account:
    currency = row["currency"]
    return Account(
        account=row["account"],
        currency=currency,
        balance=_from_minor(int(row["balance"]), currency),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


def _entry(row: sqlite3.Row) -> LedgerEntry:
    currency = row["currency"]
    return LedgerEntry(
        entry_id=int(row["entry_id"]),
        account=row["account"],
        kind=EntryKind(row["kind"]),
        amount=_from_minor(int(row["amount"]), currency),
        balance_after=_from_minor(int(row["balance_after"]), currency),
        currency=currency,
        at=datetime.fromisoformat(row["at"]),
        idempotency_key=row["idempotency_key"],
        record_id=row["record_id"],
        session_id=row["session_id"],
        note=row["note"],
    )
