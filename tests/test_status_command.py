"""`iso15118 status` against a served station API (fake station on a thread of its own)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from station_fakes import EVSE_1, EVSE_2, LIVE_ID, TOKEN, FakeStation, serve_in_thread

from iso15118.cli import main
from secc.api import ApiServer
from secc.status_command import render


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    with serve_in_thread(FakeStation()) as server:
        yield server


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISO15118_API_TOKEN", raising=False)


def status(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["status", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_the_station_for_a_technician(
    server: ApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = status(["--url", server.url, "--token", TOKEN], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"Station 0.1.0 at {server.url}, up ")  # the API's now
    assert lines[0].endswith(" (since 2026-04-30 12:00 UTC)")
    assert "Site limit: 22.0 kW" in lines
    charging = next(line for line in lines if line.startswith(EVSE_1))
    assert charging.split()[1:4] == ["charging", "49.5", "kW"]
    assert LIVE_ID in charging
    faulted = next(line for line in lines if line.startswith(EVSE_2))
    assert "faulted" in faulted
    assert "isolation fault (2026-05-01 11:55 UTC)" in faulted
    assert "Live sessions (1):" in lines
    live = next(line for line in lines if line.startswith(LIVE_ID))
    assert "contract DEABCC1234567X" in live
    assert "1.52 kWh" in live
    assert any(line.startswith("Billing outbox: 0 pending, 1 held, 4 delivered") for line in lines)
    tls = next(line for line in lines if line.strip().startswith("tls:"))
    assert "expires 2026-05-13 12:00 UTC (12 days) WARNING" in tls


def test_json(server: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = status(["--url", server.url, "--token", TOKEN, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert [e["evse_id"] for e in data["status"]["evses"]] == [EVSE_1, EVSE_2]
    assert [s["session_id"] for s in data["live_sessions"]] == [LIVE_ID]


def test_token_from_file_environment_and_config(
    server: ApiServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert status(["--url", server.url, "--token-file", str(token_file)], capsys)[0] == 0

    monkeypatch.setenv("ISO15118_API_TOKEN", TOKEN)
    assert status(["--url", server.url], capsys)[0] == 0
    monkeypatch.delenv("ISO15118_API_TOKEN")

    config = tmp_path / "secc.yaml"
    config.write_text(f"api:\n  host: 127.0.0.1\n  port: {server.port}\n  token_file: token\n")
    code, out, _ = status(["--config", str(config)], capsys)
    assert code == 0
    assert f"at http://127.0.0.1:{server.port}" in out.splitlines()[0]
    # a wildcard address in the configuration is asked on loopback
    config.write_text(f"api:\n  host: 0.0.0.0\n  port: {server.port}\n  token: {TOKEN}\n")
    assert status(["--config", str(config)], capsys)[0] == 0


@pytest.mark.parametrize("token", ["wrong", TOKEN + "x"])
def test_a_refused_token_exits_2(
    server: ApiServer, capsys: pytest.CaptureFixture[str], token: str
) -> None:
    code, out, err = status(["--url", server.url, "--token", token], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: the SECC at {server.url} refused the token")
    assert err.count("\n") == 1


def test_no_token_exits_2(server: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = status(["--url", server.url], capsys)
    assert code == 2
    assert "refused the token" in err
    assert "Authorization: Bearer" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    code, out, err = status(["--url", url, "--token", TOKEN, "--timeout", "2"], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: cannot reach the SECC at {url}")
    assert "Traceback" not in err


def test_not_the_api_exits_2(server: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = status(["--url", server.url + "/nothing", "--token", TOKEN], capsys)
    assert code == 2
    assert "answered HTTP 404" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "ftp://host/"], "expected http://HOST:PORT"),
        (["--url", "127.0.0.1:8080"], "expected http://HOST:PORT"),
        (["--config", "/nonexistent/secc.yaml"], "/nonexistent/secc.yaml"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = status(argv, capsys)
    assert code == 2
    assert err.startswith("error: ")
    assert message in err


def test_config_without_api_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "secc.yaml"
    config.write_text("network:\n  host: ::1\n")
    code, _, err = status(["--config", str(config)], capsys)
    assert code == 2
    assert "not enabled" in err


def test_token_and_token_file_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = status(["--token", "a", "--token-file", "b"], capsys)
    assert code == 2
    assert "not allowed with" in err


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"evses": "nope", "outbox": [], "certificates": None, "started_at": 5},
        {"evses": [{"evse_id": None, "power_w": "x"}, 7], "site_limit_w": None},
        {"certificates": [{"name": "tls", "days_left": -3, "not_after": "garbage"}]},
    ],
)
def test_render_survives_odd_answers(answer: dict[str, Any]) -> None:
    lines = render(answer, [None, {"session_id": 5}])
    assert lines[0].startswith("Station")
    assert any("Billing outbox" in line for line in lines)


def test_uptime() -> None:
    answer = {"started_at": "2026-05-01T10:00:00+02:00", "now": "2026-05-01T09:05:30Z"}
    assert render(answer, [])[0] == "Station -, up 1 h 5 min (since 2026-05-01 08:00 UTC)"
    answer["now"] = "2026-05-01T07:00:00Z"  # clocks disagree: no uptime
    assert render(answer, [])[0] == "Station -"
