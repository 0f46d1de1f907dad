"""``iso15118 billing``: see and push the billing records waiting for the payment processor.

    iso15118 billing list  [--state undelivered|pending|held|delivered|all] [--limit N] [--json]
    iso15118 billing show  RECORD_ID
    iso15118 billing retry [RECORD_ID ... | --all] [--deliver]

The store is found with ``--config FILE`` (the SECC's YAML: ``data_dir/secc.db``) or
``--data-dir DIR``. `retry` makes held and pending items due now; the running charger's
worker picks them up within its poll interval. ``--deliver`` also runs one delivery pass here
with the configured processor (needs ``--config``), for when the charger is down; should the
charger deliver the same record at the same time, the processor receives it twice under the
same idempotency key and settles it once.

Exit codes: 0 done; 1 an unknown record id, or ``--deliver`` left something undelivered;
2 bad usage, a bad configuration, no store where one was expected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from secc.store import OutboxEntry, OutboxState, SessionStore, StoreError

__all__ = ["add_parser", "outbox_entry_to_json"]

EXIT_NOT_FOUND = 1
EXIT_UNDELIVERED = 1
EXIT_USAGE = 2
STORE_FILE = "secc.db"

_STATES: dict[str, tuple[OutboxState, ...] | None] = {
    "undelivered": (OutboxState.PENDING, OutboxState.HELD),
    "pending": (OutboxState.PENDING,),
    "held": (OutboxState.HELD,),
    "delivered": (OutboxState.DELIVERED,),
    "all": None,
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    where = argparse.ArgumentParser(add_help=False)
    group = where.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", type=Path, metavar="FILE", help="the SECC's YAML file")
    group.add_argument("--data-dir", type=Path, metavar="DIR", help="the SECC's data directory")

    billing = commands.add_parser(
        "billing",
        help="billing records and their delivery to the payment processor",
        description="See and push the billing records waiting for the payment processor.",
    )
    sub = billing.add_subparsers(title="commands", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", parents=[where], help="outbox items and their state")
    listing.add_argument(
        "--state",
        choices=tuple(_STATES),
        default="undelivered",
        help="which items (default: undelivered, i.e. pending and held)",
    )
    listing.add_argument("--limit", type=_positive, default=50, metavar="N", help="at most N")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(run=_list)

    show = sub.add_parser(
        "show", parents=[where], help="one billing record and its delivery per destination"
    )
    show.add_argument("record_id", metavar="RECORD_ID")
    show.set_defaults(run=_show)

    retry = sub.add_parser(
        "retry",
        parents=[where],
        help="make held or pending records due now",
        description="Make held or pending records due now (the charger's worker delivers them "
        "within its poll interval).",
    )
    retry.add_argument("record_ids", nargs="*", metavar="RECORD_ID")
    retry.add_argument("--all", action="store_true", help="every held and pending record")
    retry.add_argument(
        "--deliver",
        action="store_true",
        help="also run one delivery pass in this process with the configured processor "
        "(needs --config), for when the charger is not running",
    )
    retry.set_defaults(run=_retry)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# --- the store ------------------------------------------------------------------------------


class _Failed(Exception):
    """Print `error: message` and exit with `code`."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _data_dir(args: argparse.Namespace) -> Path:
    if args.config is not None:
        from secc.config_file import read_secc_config

        return read_secc_config(args.config).data_dir  # ConfigError: exit 2 via the CLI
    data_dir: Path = args.data_dir
    return data_dir


def _open_store(args: argparse.Namespace) -> SessionStore:
    path = _data_dir(args) / STORE_FILE
    if not path.is_file():
        raise _Failed(
            f"no session store at {path} (has the SECC run with this data_dir?)", EXIT_USAGE
        )
    try:
        return SessionStore(path)
    except StoreError as exc:
        raise _Failed(str(exc), EXIT_USAGE) from None


def _command(run: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            code: int = run(args)
        except _Failed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.code
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return code

    return wrapped


# --- list -----------------------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def outbox_entry_to_json(entry: OutboxEntry) -> dict[str, Any]:
    """An outbox row with its record's summary as JSON (amounts as decimal strings)."""
    return {
        "record_id": entry.record_id,
        "destination": entry.destination,
        "state": entry.state.value,
        "session_id": entry.session_id,
        "evse_id": entry.evse_id,
        "protocol": entry.protocol,
        "kind": entry.kind.value,
        "contract_id": entry.contract_id,
        "id_token": entry.id_token,
        "energy_wh": entry.energy_wh,
        "amount": None if entry.amount is None else str(entry.amount),
        "currency": entry.currency,
        "created_at": _time(entry.created_at),
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "next_attempt_at": _time(entry.next_attempt_at),
        "delivered_at": _time(entry.delivered_at),
        "held_at": _time(entry.held_at),
        "reference": entry.reference,
    }


def _counts(store: SessionStore) -> dict[str, int]:
    return {state.value: n for state, n in store.outbox_counts().items()}


def _row(entry: OutboxEntry) -> list[str]:
    who = entry.contract_id or entry.id_token or "-"
    amount = "-" if entry.amount is None else f"{entry.amount} {entry.currency}"
    if entry.state is OutboxState.PENDING:
        when, note = _time(entry.next_attempt_at), entry.last_error
    elif entry.state is OutboxState.HELD:
        when, note = _time(entry.held_at), entry.last_error
    else:
        when, note = _time(entry.delivered_at), entry.reference
    return [
        entry.record_id,
        entry.destination,
        entry.state.value,
        entry.evse_id,
        who,
        f"{entry.energy_wh / 1000:.3f}",
        amount,
        str(entry.attempts),
        when or "-",
        note or "",
    ]


_HEADER = ["RECORD", "DEST", "STATE", "EVSE", "CONTRACT/TOKEN", "kWh", "AMOUNT", "TRIES"]
_HEADER += ["DUE/HELD/DELIVERED (UTC)", "LAST ERROR / REFERENCE"]


@_command
def _list(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        states = _STATES[args.state]
        entries = store.outbox_entries(
            states, newest_first=args.state in ("delivered", "all"), limit=args.limit
        )
        counts = _counts(store)
    if args.json:
        print(json.dumps({"counts": counts, "items": [outbox_entry_to_json(e) for e in entries]}))
        return 0
    summary = ", ".join(f"{state} {n}" for state, n in counts.items())
    if not entries:
        which = "" if args.state == "all" else f"{args.state} "
        print(f"no {which}items ({summary})")
        return 0
    rows = [_HEADER, *(_row(e) for e in entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    print(f"({len(entries)} shown; {summary})")
    return 0


# --- show -----------------------------------------------------------------------------------


@_command
def _show(args: argparse.Namespace) -> int:
    from secc.records_json import billing_record_to_json

    with _open_store(args) as store:
        record = store.billing_record(args.record_id)
        if record is None:
            raise _Failed(f"no billing record {args.record_id!r}", EXIT_NOT_FOUND)
        entries = store.outbox_entries(record_id=args.record_id)
    outbox = [
        {k: v for k, v in outbox_entry_to_json(e).items() if k in _DELIVERY_KEYS} for e in entries
    ]
    print(json.dumps({"record": billing_record_to_json(record), "outbox": outbox}, indent=2))
    return 0


_DELIVERY_KEYS = frozenset(
    {
        "destination",
        "state",
        "attempts",
        "last_error",
        "next_attempt_at",
        "delivered_at",
        "held_at",
        "reference",
        "created_at",
    }
)


# --- retry ----------------------------------------------------------------------------------


@_command
def _retry(args: argparse.Namespace) -> int:
    if bool(args.record_ids) == bool(args.all):
        raise _Failed("give RECORD_ID ... or --all (not both)", EXIT_USAGE)
    if args.deliver and args.config is None:
        raise _Failed("--deliver needs --config (to know the payment processor)", EXIT_USAGE)
    billing = None
    if args.deliver:
        from secc.config_file import read_secc_config

        billing = read_secc_config(args.config).billing
    with _open_store(args) as store:
        unknown = [r for r in args.record_ids if store.billing_record(r) is None]
        if unknown:
            raise _Failed(f"no billing record {', '.join(map(repr, unknown))}", EXIT_NOT_FOUND)
        now = datetime.now(UTC)
        if args.all:
            released = store.release(at=now)
        else:
            released = sum(store.release(at=now, record_id=r) for r in args.record_ids)
        print(f"released {released} item(s); due now")
        if billing is None:
            return 0
        return asyncio.run(_deliver(store, billing))


async def _deliver(store: SessionStore, billing: Any) -> int:
    from secc.billing.config import build_processor, build_worker

    processor = build_processor(billing)
    try:
        worker = build_worker(billing, store, processor)
        done = await worker.deliver_due(datetime.now(UTC))
    finally:
        await processor.close()
    for attempt in done.attempts:
        detail = attempt.reference if attempt.error is None else attempt.error
        print(f"{attempt.record_id} -> {attempt.destination}: {attempt.outcome.value} {detail}")
    for destination in done.unserved:
        print(f"destination {destination!r} has pending items but no configured processor")
    print(
        f"delivered {len(done.delivered)}, failed {len(done.failed)}, held {len(done.held)}; "
        + ", ".join(f"{state} {n}" for state, n in _counts(store).items())
    )
    return 0 if not done.failed and not done.held else EXIT_UNDELIVERED
