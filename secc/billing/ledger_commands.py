"""``iso15118 ledger``: the prepaid ledger (`secc.billing.ledger`) for an operator.

    iso15118 ledger --ledger FILE topup ACCOUNT AMOUNT [--currency EUR] [--note TEXT]
    iso15118 ledger --ledger FILE balance [ACCOUNT] [--json]
    iso15118 ledger --ledger FILE history ACCOUNT [--limit N] [--json]

ACCOUNT is an eMAID or a card token (any spelling: ``DE-ABC-C12345678-9`` and
``deabcc12345678`` are one account). ``topup`` creates the ledger file and the account if
needed; ``balance`` and ``history`` refuse a file that does not exist (a mistyped path should
not create an empty ledger). Errors print one ``error: ...`` line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = commands.add_parser(
        "ledger",
        help="the local prepaid ledger",
        description="Top up, and look at, the accounts of the local prepaid ledger.",
    )
    ledger.add_argument("--ledger", required=True, type=Path, metavar="FILE", help="SQLite file")
    sub = ledger.add_subparsers(title="commands", required=True, metavar="COMMAND")
    topup = sub.add_parser("topup", help="credit an account (created if new)")
    topup.add_argument("account", metavar="ACCOUNT", help="eMAID or card token")
    topup.add_argument("amount", metavar="AMOUNT", help="e.g. 20 or 12.50")
    topup.add_argument("--currency", help="for a new account (default EUR)")
    topup.add_argument("--note", default="", help="kept with the entry")
    topup.set_defaults(run=_topup)
    balance = sub.add_parser("balance", help="one account's balance, or every account's")
    balance.add_argument("account", metavar="ACCOUNT", nargs="?")
    balance.add_argument("--json", action="store_true", help="JSON instead of text")
    balance.set_defaults(run=_balance)
    history = sub.add_parser("history", help="an account's top-ups and charges")
    history.add_argument("account", metavar="ACCOUNT")
    history.add_argument("--limit", type=int, metavar="N", help="the last N entries")
    history.add_argument("--json", action="store_true", help="JSON lines instead of text")
    history.set_defaults(run=_history)


def _open(args: argparse.Namespace, *, create: bool) -> Any:
    from secc.billing.ledger import PrepaidLedger

    options = {"currency": args.currency} if getattr(args, "currency", None) else {}
    return PrepaidLedger(args.ledger, create=create, **options)


def _topup(args: argparse.Namespace) -> int:
    from secc.billing.ledger import format_amount

    with _open(args, create=True) as ledger:
        entry = ledger.top_up(args.account, args.amount, currency=args.currency, note=args.note)
    print(
        f"{entry.account}: topped up {format_amount(entry.amount, entry.currency)}, "
        f"balance {format_amount(entry.balance_after, entry.currency)}"
    )
    return 0


def _balance(args: argparse.Namespace) -> int:
    from secc.billing.ledger import format_amount

    with _open(args, create=False) as ledger:
        accounts = [ledger.balance(args.account)] if args.account else ledger.accounts()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "account": a.account,
                        "currency": a.currency,
                        "balance": f"{a.balance:f}",
                        "updated_at": a.updated_at.isoformat(),
                    }
                    for a in accounts
                ],
                indent=2,
            )
        )
        return 0
    if not accounts:
        print("no accounts")
    for a in accounts:
        print(f"{a.account}  {format_amount(a.balance, a.currency)}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from secc.billing.ledger import format_amount

    with _open(args, create=False) as ledger:
        entries = ledger.history(args.account, limit=args.limit)
    for e in entries:
        if args.json:
            obj = {
                "entry_id": e.entry_id,
                "account": e.account,
                "kind": e.kind.value,
                "amount": f"{e.amount:f}",
                "balance_after": f"{e.balance_after:f}",
                "currency": e.currency,
                "at": e.at.isoformat(),
                "idempotency_key": e.idempotency_key,
                "record_id": e.record_id,
                "session_id": e.session_id,
                "note": e.note,
            }
            print(json.dumps(obj, sort_keys=True))
            continue
        what = f"session {e.session_id}" if e.session_id else e.note
        print(
            f"{e.at:%Y-%m-%d %H:%M:%S}Z  {e.kind.value:<6}  "
            f"{format_amount(e.amount, e.currency):>14}  "
            f"balance {format_amount(e.balance_after, e.currency):>14}  {what}".rstrip()
        )
    return 0
