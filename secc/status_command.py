"""`iso15118 status`: the station's state for a technician at the console, via the station API.

    iso15118 status [--url URL] [--token T | --token-file F] [--config FILE] [--json]

Where to ask and with which token: ``--url`` and ``--token``/``--token-file`` if given, else
the environment variable ``ISO15118_API_TOKEN`` for the token, else the ``api:`` section of
the SECC's YAML file (``--config``), else ``http://127.0.0.1:8080`` without a token.

Prints the EVSEs (state, power, share of the site limit, session, last error), the live
sessions, the billing outbox counts, the certificates' expiry and the site limit; ``--json``
prints what the API answered instead. If the SECC cannot be reached, refuses the token or
answers something else than the status, one ``error: ...`` line goes to stderr and the exit
code is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

__all__ = ["EXIT_UNREACHABLE", "StatusError", "add_parser", "fetch", "render", "run_status"]

EXIT_UNREACHABLE: Final = 2
DEFAULT_URL: Final = "http://127.0.0.1:8080"
TOKEN_VARIABLE: Final = "ISO15118_API_TOKEN"
#: certificates expiring sooner than this are flagged
EXPIRY_WARNING_DAYS: Final = 30
_WILDCARDS: Final = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


class StatusError(Exception):
    """The status could not be fetched (unreachable, token refused, unexpected answer)."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser(
        "status",
        help="the station's state (EVSEs, sessions, billing, certificates) via its API",
        description="Ask a running SECC's station API for its state and print it.",
    )
    status.add_argument("--url", help=f"the API's address (default {DEFAULT_URL})")
    tokens = status.add_mutually_exclusive_group()
    tokens.add_argument("--token", help=f"the bearer token (or set {TOKEN_VARIABLE})")
    tokens.add_argument("--token-file", type=Path, metavar="FILE", help="file holding the token")
    status.add_argument(
        "--config", type=Path, metavar="FILE", help="the SECC's YAML file (its api: section)"
    )
    status.add_argument("--json", action="store_true", help="print the API's JSON")
    status.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="seconds to wait (default 5)"
    )
    status.set_defaults(run=run_status)


def _from_config(path: Path) -> tuple[str, str | None]:
    """URL and token of the ``api:`` section (raises iso15118.yamlconf.ConfigError)."""
    from iso15118.yamlconf import ConfigError, load_yaml
    from secc.api import read_api_section

    config = read_api_section(load_yaml(path).section("api"))
    if not config.enabled:
        raise ConfigError(f"{path}: the station API is not enabled (no api: section)")
    host = _WILDCARDS.get(config.host, config.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}", config.load_token()


def _endpoint(args: argparse.Namespace) -> tuple[str, str | None]:
    url, token = DEFAULT_URL, None
    if args.config is not None:
        url, token = _from_config(args.config)
    if args.url is not None:
        url = args.url
    if args.token is not None:
        token = args.token
    elif args.token_file is not None:
        from secc.api import ApiConfig

        token = ApiConfig(token_file=args.token_file).load_token()
    elif os.environ.get(TOKEN_VARIABLE):
        token = os.environ[TOKEN_VARIABLE]
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--url {url!r}: expected http://HOST:PORT")
    return url.rstrip("/"), token


def fetch(url: str, path: str, token: str | None, *, timeout: float = 5.0) -> Any:
    """GET `path` of the API at `url` as JSON; StatusError with a message for people."""
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        if exc.code == 401:
            raise StatusError(f"the SECC at {url} refused the token: {detail}") from None
        raise StatusError(f"the SECC at {url} answered HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusError(f"cannot reach the SECC at {url}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise StatusError(f"{url}{path} did not answer JSON (is this the station API?)") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return str(body.get("detail") or body.get("error") or exc.reason)
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def run_status(args: argparse.Namespace) -> int:
    url, token = _endpoint(args)
    try:
        status = fetch(url, "/api/v1/status", token, timeout=args.timeout)
        live = fetch(url, "/api/v1/sessions/live", token, timeout=args.timeout)
        if not isinstance(status, dict) or not isinstance(live, dict):
            raise StatusError(f"{url} did not answer a station status")
    except StatusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    sessions = _dicts(live.get("sessions"))
    if args.json:
        print(json.dumps({"status": status, "live_sessions": sessions}, indent=2))
    else:
        for line in render(status, sessions, url=url):
            print(line)
    return 0


# --- the text -----------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _when(value: Any) -> str:
    parsed = _time(value)
    return "-" if parsed is None else parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _power(watts: Any) -> str:
    if not isinstance(watts, int | float):
        return "-"
    return f"{watts / 1000:.1f} kW"


def _energy(wh: Any) -> str:
    if not isinstance(wh, int | float):
        return "-"
    return f"{wh / 1000:.2f} kWh"


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def render(status: dict[str, Any], live: Sequence[Any], *, url: str = "") -> list[str]:
    """The status as lines for people; fields missing from the answer show as ``-``."""
    lines = []
    started, now = _time(status.get("started_at")), _time(status.get("now"))
    heading = f"Station {_text(status.get('version'))}"
    if url:
        heading += f" at {url}"
    if started is not None and now is not None and now >= started:
        uptime = _duration((now - started).total_seconds())
        heading += f", up {uptime} (since {_when(status.get('started_at'))})"
    lines.append(heading)
    limit = status.get("site_limit_w")
    lines.append(f"Site limit: {'none' if limit is None else _power(limit)}")

    evses = _dicts(status.get("evses"))
    lines.append("")
    rows = []
    for evse in evses:
        error = evse.get("last_error")
        if error:
            error = f"{error} ({_when(evse.get('last_error_at'))})"
        rows.append(
            [
                _text(evse.get("evse_id")),
                _text(evse.get("state")),
                _power(evse.get("power_w")),
                _power(evse.get("allocated_w")),
                _text(evse.get("session_id")),
                _energy(evse.get("session_energy_wh")),
                _text(error),
            ]
        )
    header = ["EVSE", "STATE", "POWER", "ALLOCATED", "SESSION", "ENERGY", "LAST ERROR"]
    lines.extend(_table(header, rows) if rows else ["No EVSEs."])

    sessions = _dicts(list(live))
    lines.append("")
    if sessions:
        lines.append(f"Live sessions ({len(sessions)}):")
        rows = []
        for s in sessions:
            who = s.get("contract_id") or s.get("id_token")
            kind = s.get("kind")
            rows.append(
                [
                    _text(s.get("session_id")),
                    _text(s.get("evse_id")),
                    _text(s.get("protocol")),
                    _when(s.get("started_at")),
                    _text(f"{kind} {who}" if kind and who else kind),
                    "yes" if s.get("charging") else "no",
                    _energy(s.get("energy_wh")),
                    _power(s.get("power_w")),
                ]
            )
        header = [
            "SESSION",
            "EVSE",
            "PROTOCOL",
            "SINCE",
            "IDENTIFIED",
            "CHARGING",
            "ENERGY",
            "POWER",
        ]
        lines.extend(_table(header, rows))
    else:
        lines.append("No live sessions.")

    given = status.get("outbox")
    outbox: dict[str, Any] = given if isinstance(given, dict) else {}
    lines.append("")
    counts = ", ".join(f"{outbox.get(k, 0)} {k}" for k in ("pending", "held", "delivered"))
    line = f"Billing outbox: {counts}"
    if isinstance(outbox.get("held"), int) and outbox["held"] > 0:
        line += " (held records wait for `iso15118 billing retry`)"
    lines.append(line)

    certificates = _dicts(status.get("certificates"))
    if certificates:
        lines.append("Certificates:")
        for cert in certificates:
            days = cert.get("days_left")
            line = (
                f"  {_text(cert.get('name'))}: {_text(cert.get('subject'))}, "
                f"expires {_when(cert.get('not_after'))}"
            )
            if isinstance(days, int | float):
                if days < 0:
                    line += " EXPIRED"
                else:
                    line += f" ({int(days)} days)"
                    if days < EXPIRY_WARNING_DAYS:
                        line += f" WARNING: less than {EXPIRY_WARNING_DAYS} days left"
            lines.append(line)
    else:
        lines.append("Certificates: none reported")
    return lines
