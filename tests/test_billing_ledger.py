"""secc.billing.ledger: the local prepaid ledger (accounts, top-ups, refusal at zero, charges
once per idempotency key) and its command line."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from iso15118.cli import main
from iso15118.yamlconf import load_yaml
from secc.billing.config import build_processor, read_billing_section
from secc.billing.ledger import (
    EntryKind,
    LedgerError,
    PrepaidLedger,
    account_key,
    format_amount,
)
from secc.payment import DeliveryError, RejectedRecord, Settlement, idempotency_key
from secc.records import (
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
    IdentificationKind,
    MeterReading,
    Price,
    StopReason,
)
from secc.tariff import Tariff

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
EMAID = "DE-ABC-C12345678-9"
CARD = "04a1b2c3d4"
TARIFF = Tariff(
    id="standard",
    currency="EUR",
    energy_price=Decimal("0.39"),
    time_price=Decimal("2.40"),
    session_fee=Decimal("1.00"),
)


@pytest.fixture
def ledger(tmp_path: Path) -> PrepaidLedger:
    with PrepaidLedger(tmp_path / "ledger.db", clock=lambda: T0) as opened:
        yield opened  # type: ignore[misc]


def _record(
    *,
    record_id: str = "r1",
    contract_id: str | None = None,
    id_token: str | None = CARD,
    energy_wh: int = 10_000,
    price: Price | str | None = "tariff",
) -> BillingRecord:
    stopped = T0 + timedelta(hours=1)
    if price == "tariff":
        price = TARIFF.price(energy_wh, T0, stopped)  # EUR 3.90 + 2.40 + 1.00 = 7.30
    return BillingRecord(
        record_id=record_id,
        session_id="0102030405060708",
        evse_id="DE*ABC*E1",
        protocol="iso2",
        kind=IdentificationKind.CONTRACT if contract_id else IdentificationKind.EXTERNAL,
        contract_id=contract_id,
        id_token=None if contract_id else id_token,
        started_at=T0,
        stopped_at=stopped,
        meter_start=MeterReading(meter_id="M", energy_wh=1_000, at=T0),
        meter_stop=MeterReading(meter_id="M", energy_wh=1_000 + energy_wh, at=stopped),
        stop_reason=StopReason.EV_STOPPED,
        price=price if not isinstance(price, str) else None,
    )


def _authorize(ledger: PrepaidLedger, **identification: str) -> tuple[AuthorizationStatus, str]:
    kind = IdentificationKind.CONTRACT if "contract_id" in identification else (
        IdentificationKind.EXTERNAL
    )  # fmt: skip
    request = AuthorizationRequest(
        session_id="01", evse_id="DE*ABC*E1", kind=kind, **identification
    )
    decision = asyncio.run(ledger.authorize(request))
    return decision.status, decision.reason


def _settle(ledger: PrepaidLedger, record: BillingRecord, key: str | None = None) -> Settlement:
    return asyncio.run(
        ledger.settle(record, idempotency_key=key or idempotency_key(record, ledger.name))
    )


# --- accounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("DE-ABC-C12345678-9", "DEABCC12345678"),
        ("deabcc12345678", "DEABCC12345678"),
        ("DEABCC123456789", "DEABCC12345678"),  # check digit kept or not: one contract
        (" 04-a1-b2 ", "04A1B2"),  # a card token: normalised, kept whole
        ("0123456789ABCDEF", "0123456789ABCDEF"),
    ],
)
def test_account_keys(spelling: str, key: str) -> None:
    assert account_key(spelling) == key


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01"])
def test_bad_identifications(bad: str) -> None:
    with pytest.raises(LedgerError):
        account_key(bad)


def test_top_up_balance_history(ledger: PrepaidLedger) -> None:
    first = ledger.top_up(EMAID, "20")
    assert (first.kind, first.amount, first.balance_after) == (
        EntryKind.TOP_UP,
        Decimal("20.00"),
        Decimal("20.00"),
    )
    ledger.top_up("deabcc12345678", Decimal("2.5"), note="desk")
    account = ledger.balance("DE ABC C12345678")
    assert (account.account, account.currency, account.balance) == (
        "DEABCC12345678",
        "EUR",
        Decimal("22.50"),
    )
    assert [e.amount for e in ledger.history(EMAID)] == [Decimal("20.00"), Decimal("2.50")]
    assert [e.note for e in ledger.history(EMAID, limit=1)] == ["desk"]
    assert [a.account for a in ledger.accounts()] == ["DEABCC12345678"]


def test_currencies(ledger: PrepaidLedger) -> None:
    ledger.top_up("yen-card", "1000", currency="JPY")
    assert ledger.balance("yen-card").balance == Decimal(1000)
    with pytest.raises(LedgerError, match="kept in JPY"):
        ledger.top_up("yen-card", "1", currency="EUR")
    with pytest.raises(LedgerError, match="more decimals than JPY"):
        ledger.top_up("yen-card", "0.5")
    with pytest.raises(LedgerError, match="ISO 4217"):
        ledger.top_up("other", "1", currency="XXX")
    assert format_amount(Decimal("-1.5"), "EUR") == "EUR -1.50"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "positive"),
        ("-5", "positive"),
        ("five", "not an amount"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("1.001", "more decimals than EUR"),
        ("1e30", "too large"),
        ("", "not an amount"),
    ],
)
def test_bad_top_ups(ledger: PrepaidLedger, amount: str, message: str) -> None:
    with pytest.raises(LedgerError, match=message):
        ledger.top_up(CARD, amount)
    with pytest.raises(LedgerError, match="unknown"):
        ledger.balance(CARD)  # nothing was created


def test_top_up_with_a_key_credits_once(ledger: PrepaidLedger) -> None:
    first = ledger.top_up(CARD, "10", idempotency_key="payment-123")
    again = ledger.top_up(CARD, "10", idempotency_key="payment-123")
    assert again == first
    assert ledger.balance(CARD).balance == Decimal("10.00")


def test_unknown_accounts(ledger: PrepaidLedger) -> None:
    with pytest.raises(LedgerError, match="unknown prepaid account 04A1B2C3D4"):
        ledger.balance(CARD)
    with pytest.raises(LedgerError, match="unknown"):
        ledger.history(CARD)


# --- authorisation --------------------------------------------------------------------------------


def test_authorize(ledger: PrepaidLedger) -> None:
    status, reason = _authorize(ledger, id_token=CARD)
    assert status is AuthorizationStatus.REJECTED and "unknown prepaid account" in reason
    ledger.top_up(CARD, "10")
    assert _authorize(ledger, id_token=CARD) == (
        AuthorizationStatus.ACCEPTED,
        "prepaid balance EUR 10.00",
    )
    ledger.top_up(EMAID, "1")
    status, _ = _authorize(ledger, contract_id="DEABCC123456789")
    assert status is AuthorizationStatus.ACCEPTED
    status, reason = _authorize(ledger)
    assert status is AuthorizationStatus.REJECTED and "no identification" in reason


def test_refusal_at_and_below_zero(ledger: PrepaidLedger) -> None:
    ledger.top_up(CARD, "7.30")
    _settle(ledger, _record())  # EUR 7.30: exactly the balance
    assert ledger.balance(CARD).balance == Decimal("0.00")
    assert _authorize(ledger, id_token=CARD) == (
        AuthorizationStatus.REJECTED,
        "prepaid balance EUR 0.00: top up first",
    )
    _settle(ledger, _record(record_id="r2"))  # delivered anyway: the debt is kept
    assert ledger.balance(CARD).balance == Decimal("-7.30")
    status, reason = _authorize(ledger, id_token=CARD)
    assert status is AuthorizationStatus.REJECTED and "EUR -7.30" in reason
    ledger.top_up(CARD, "10")
    assert _authorize(ledger, id_token=CARD)[0] is AuthorizationStatus.ACCEPTED


# --- settling -------------------------------------------------------------------------------------


def test_settle_debits_the_price_once_per_key(ledger: PrepaidLedger) -> None:
    ledger.top_up(CARD, "20")
    record = _record()
    first = _settle(ledger, record)
    assert not first.duplicate and first.reference.startswith("ledger-")
    again = _settle(ledger, record)  # the outbox delivered it again
    assert again == Settlement(reference=first.reference, duplicate=True)
    assert ledger.balance(CARD).balance == Decimal("12.70")
    charge = ledger.history(CARD)[-1]
    assert (charge.kind, charge.amount, charge.record_id, charge.session_id) == (
        EntryKind.CHARGE,
        Decimal("-7.30"),
        "r1",
        "0102030405060708",
    )
    assert charge.idempotency_key == "r1:payment"


def test_a_record_without_price_charges_nothing_but_is_entered(ledger: PrepaidLedger) -> None:
    ledger.top_up(EMAID, "5")
    settlement = _settle(ledger, _record(contract_id="DEABCC123456789", price=None))
    assert not settlement.duplicate
    assert ledger.balance(EMAID).balance == Decimal("5.00")
    assert ledger.history(EMAID)[-1].amount == Decimal("0.00")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_record(id_token=None), "names no prepaid account"),
        (_record(id_token="unknown-card"), "unknown prepaid account UNKNOWNCARD"),
        (
            _record(
                price=Price(tariff_id="t", currency="USD", energy=Decimal(1), time=Decimal(0),
                            fee=Decimal(0), total=Decimal(1))
            ),
            "priced in USD",
        ),
        (
            _record(
                price=Price(tariff_id="t", currency="EUR", energy=Decimal("0.005"),
                            time=Decimal(0), fee=Decimal(0), total=Decimal("0.005"))
            ),
            "more decimals than EUR",
        ),
        (
            _record(
                price=Price(tariff_id="t", currency="EUR", energy=Decimal(0), time=Decimal(0),
                            fee=Decimal(0), total=Decimal("-1"))
            ),
            "negative price",
        ),
    ],
)  # fmt: skip
def test_records_the_ledger_refuses(
    ledger: PrepaidLedger, record: BillingRecord, message: str
) -> None:
    ledger.top_up(CARD, "20")
    with pytest.raises(RejectedRecord, match=message):
        _settle(ledger, record, key="k1")
    assert ledger.balance(CARD).balance == Decimal("20.00")
    assert len(ledger.history(CARD)) == 1  # nothing entered


def test_a_refused_record_is_charged_once_the_account_exists(ledger: PrepaidLedger) -> None:
    record = _record()
    with pytest.raises(RejectedRecord):
        _settle(ledger, record)
    ledger.top_up(CARD, "10")  # the operator creates the account, then releases the record
    assert not _settle(ledger, record).duplicate
    assert ledger.balance(CARD).balance == Decimal("2.70")


def test_concurrent_settles_of_one_key_charge_once(tmp_path: Path) -> None:
    """Eight connections (as eight processes would have) settle the same record at once."""
    path = tmp_path / "ledger.db"
    with PrepaidLedger(path) as setup:
        setup.top_up(CARD, "100")
    ledgers = [PrepaidLedger(path) for _ in range(8)]
    record = _record()
    barrier = threading.Barrier(len(ledgers))
    results: list[Settlement] = []
    errors: list[BaseException] = []

    def settle(ledger: PrepaidLedger) -> None:
        barrier.wait()
        try:
            results.append(ledger.charge(record, idempotency_key="r1:payment"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(lg,)) for lg in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    for lg in ledgers:
        lg.close_now()
    assert not errors, errors
    assert len(results) == 8
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.reference for r in results}) == 1
    with PrepaidLedger(path) as check:
        assert check.balance(CARD).balance == Decimal("92.70")
        assert [e.kind for e in check.history(CARD)] == [EntryKind.TOP_UP, EntryKind.CHARGE]


def test_concurrent_settles_in_one_event_loop(ledger: PrepaidLedger) -> None:
    ledger.top_up(CARD, "100")
    records = [_record(record_id=f"r{i % 3}") for i in range(12)]  # three records, four times

    async def run() -> list[Settlement]:
        return await asyncio.gather(
            *(ledger.settle(r, idempotency_key=idempotency_key(r, "payment")) for r in records)
        )

    results = asyncio.run(run())
    assert sum(not r.duplicate for r in results) == 3
    assert ledger.balance(CARD).balance == Decimal("100") - 3 * Decimal("7.30")


def test_a_locked_ledger_is_retried_later(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with PrepaidLedger(path) as setup:
        setup.top_up(CARD, "10")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process writing, for longer than we wait
    try:
        with PrepaidLedger(path, busy_timeout=0.05, create=False) as ledger:
            with pytest.raises(DeliveryError, match="locked") as caught:
                ledger.charge(_record(), idempotency_key="k")
            assert not isinstance(caught.value, RejectedRecord)  # retryable
            assert _authorize(ledger, id_token=CARD)[0] is AuthorizationStatus.ACCEPTED
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


# --- the file ------------------------------------------------------------------------------------


def test_the_file_is_durable_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with PrepaidLedger(path) as ledger:
        ledger.top_up(CARD, "3")
        mode = ledger._db.execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = ledger._db.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, synchronous) == ("wal", 2)  # 2: FULL
    with PrepaidLedger(path, create=False) as again:
        assert again.balance(CARD).balance == Decimal("3.00")


def test_files_that_are_not_ledgers(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger at"):
        PrepaidLedger(tmp_path / "missing.db", create=False)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerError, match="not a ledger"):
        PrepaidLedger(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite database, not at all" * 100)
    with pytest.raises(LedgerError, match=r"not a usable ledger|cannot open"):
        PrepaidLedger(garbage)
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version=7")
    with pytest.raises(LedgerError, match="schema version 7"):
        PrepaidLedger(newer)
    with pytest.raises(LedgerError, match="ISO 4217"):
        PrepaidLedger(tmp_path / "x.db", currency="EURO")


def test_configured_as_the_billing_processor(tmp_path: Path) -> None:
    (tmp_path / "secc.yaml").write_text(
        "billing:\n"
        "  processor:\n"
        "    class: secc.billing.ledger:PrepaidLedger\n"
        "    options: {ledger_file: prepaid.db, currency: EUR}\n"
    )
    config = read_billing_section(load_yaml(tmp_path / "secc.yaml").section("billing"))
    processor = build_processor(config)
    assert isinstance(processor, PrepaidLedger)
    assert processor.path == tmp_path / "prepaid.db" and processor.name == "payment"
    processor.close_now()


# --- the command line ----------------------------------------------------------------------------


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "ledger.db")
    assert main(["ledger", "--ledger", db, "balance"]) == 2  # no file yet: not created
    assert "no ledger at" in capsys.readouterr().err
    assert main(["ledger", "--ledger", db, "topup", EMAID, "20"]) == 0
    assert capsys.readouterr().out == ("DEABCC12345678: topped up EUR 20.00, balance EUR 20.00\n")
    assert main(["ledger", "--ledger", db, "topup", CARD, "5.5", "--note", "desk"]) == 0
    capsys.readouterr()
    assert main(["ledger", "--ledger", db, "balance"]) == 0
    assert capsys.readouterr().out == "04A1B2C3D4  EUR 5.50\nDEABCC12345678  EUR 20.00\n"
    assert main(["ledger", "--ledger", db, "balance", "deabcc12345678", "--json"]) == 0
    assert '"balance": "20.00"' in capsys.readouterr().out
    with PrepaidLedger(db) as ledger:
        ledger.charge(_record(), idempotency_key="r1:payment")
    assert main(["ledger", "--ledger", db, "history", CARD]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "top-up" in lines[0] and "EUR 5.50" in lines[0] and lines[0].endswith("desk")
    assert "charge" in lines[1] and "EUR -7.30" in lines[1] and "EUR -1.80" in lines[1]
    assert lines[1].endswith("session 0102030405060708")
    assert main(["ledger", "--ledger", db, "history", CARD, "--json", "--limit", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert '"amount": "-7.30"' in line and '"record_id": "r1"' in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["topup", CARD, "-3"], "positive"),
        (["topup", CARD, "abc"], "not an amount"),
        (["topup", CARD, "1.234"], "more decimals"),
        (["topup", "", "1"], "identification"),
        (["history", "nobody"], "unknown prepaid account NOBODY"),
        (["history", CARD, "--limit", "0"], "limit"),
    ],
)
def test_cli_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    db = str(tmp_path / "ledger.db")
    assert main(["ledger", "--ledger", db, "topup", CARD, "1"]) == 0
    capsys.readouterr()
    assert main(["ledger", "--ledger", db, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
