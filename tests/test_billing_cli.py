"""``iso15118 billing list|show|retry`` (through `iso15118.cli.main`)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from billing_receiver import threaded_receiver
from test_billing_outbox import record

from iso15118.cli import main
from secc.records_json import billing_record_to_json
from secc.store import OutboxState, SessionStore

SECRET = b"cli-test-secret"
NOW = datetime.now(UTC)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A store with records 0..4: 0, 1 pending (1 failed once), 2 held, 3 delivered, 4 pending."""
    store = SessionStore(tmp_path / "secc.db")
    for n in range(5):
        store.record_billing(record(n))
    store.mark_failed("rec-0001", "payment", error="HTTP 503", retry_at=NOW + timedelta(hours=1))
    store.mark_held("rec-0002", "payment", error="rejected: HTTP 400: bad contract", at=NOW)
    store.mark_delivered("rec-0003", "payment", at=NOW, reference="inv-3")
    store.close()
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def states(data_dir: Path) -> dict[str, OutboxState]:
    with SessionStore(data_dir / "secc.db") as store:
        return {e.record_id: e.state for e in store.outbox_entries(limit=1000)}


def write_config(tmp_path: Path, url: str, data_dir: Path) -> Path:
    (tmp_path / "webhook.secret").write_bytes(SECRET + b"\n")
    config = tmp_path / "secc.yaml"
    config.write_text(
        f"""data_dir: {data_dir}
billing:
  processor:
    class: "secc.billing.webhook:WebhookProcessor"
    options: {{url: "{url}", secret_file: webhook.secret, timeout: 5}}
  retry: {{initial: 1, max: 10}}
"""
    )
    return config


def test_list_table_and_states(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "billing", "list", "--data-dir", data_dir)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["RECORD", "DEST", "STATE"]
    assert [line.split()[0] for line in lines[1:-1]] == [
        "rec-0000",
        "rec-0001",
        "rec-0002",
        "rec-0004",
    ]
    assert "HTTP 503" in lines[2] and "bad contract" in lines[3] and "held" in lines[3]
    assert "DEABCC123456780" in lines[1] and "5.000" in lines[1]
    assert lines[-1] == "(4 shown; pending 3, delivered 1, held 1)"

    code, out, _ = cli(capsys, "billing", "list", "--data-dir", data_dir, "--state", "held")
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["rec-0002"]
    code, out, _ = cli(capsys, "billing", "list", "--data-dir", data_dir, "--state", "all")
    assert out.splitlines()[1].split()[0] == "rec-0004"  # newest first
    code, out, _ = cli(
        capsys, "billing", "list", "--data-dir", data_dir, "--state", "delivered", "--limit", "1"
    )
    assert "inv-3" in out.splitlines()[1]


def test_list_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "billing", "list", "--data-dir", data_dir, "--json", "--limit", "2")
    assert code == 0
    listing = json.loads(out)
    assert listing["counts"] == {"pending": 3, "delivered": 1, "held": 1}
    first, second = listing["items"]
    assert first["record_id"] == "rec-0000" and first["state"] == "pending"
    assert first["energy_wh"] == 5000 and first["contract_id"] == "DEABCC123456780"
    assert first["attempts"] == 0 and first["next_attempt_at"] is not None
    assert second["last_error"] == "HTTP 503" and second["attempts"] == 1


def test_list_of_an_empty_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    SessionStore(tmp_path / "secc.db").close()
    code, out, _ = cli(capsys, "billing", "list", "--data-dir", tmp_path)
    assert code == 0 and out.startswith("no undelivered items")


def test_show(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "billing", "show", "rec-0003", "--data-dir", data_dir)
    assert code == 0
    shown = json.loads(out)
    assert shown["record"] == billing_record_to_json(record(3))
    (outbox,) = shown["outbox"]
    assert outbox["destination"] == "payment" and outbox["state"] == "delivered"
    assert outbox["reference"] == "inv-3" and outbox["delivered_at"] is not None


def test_retry_releases_held_and_pending(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "billing", "retry", "rec-0002", "--data-dir", data_dir)
    assert code == 0 and out.strip() == "released 1 item(s); due now"
    assert states(data_dir)["rec-0002"] is OutboxState.PENDING
    with SessionStore(data_dir / "secc.db") as store:
        due = {i.record_id for i in store.pending_outbox(datetime.now(UTC))}
    assert due == {"rec-0000", "rec-0002", "rec-0004"}  # rec-0001 still waits an hour

    code, out, _ = cli(capsys, "billing", "retry", "--all", "--data-dir", data_dir)
    assert code == 0 and out.strip() == "released 4 item(s); due now"
    code, out, _ = cli(capsys, "billing", "retry", "rec-0003", "--data-dir", data_dir)
    assert code == 0 and out.strip() == "released 0 item(s); due now"  # delivered already


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["show", "nope"], 1, "no billing record 'nope'"),
        (["retry", "rec-0000", "nope", "zz"], 1, "no billing record 'nope', 'zz'"),
        (["retry"], 2, "give RECORD_ID ... or --all"),
        (["retry", "--all", "rec-0000"], 2, "give RECORD_ID ... or --all"),
        (["retry", "--all", "--deliver"], 2, "--deliver needs --config"),
        (["list", "--limit", "0"], 2, "must be at least 1"),
        (["list", "--state", "lost"], 2, "invalid choice"),
    ],
)
def test_errors(
    data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    before = states(data_dir)
    got, out, err = cli(capsys, "billing", *argv, "--data-dir", data_dir)
    assert got == code and message in err and out == ""
    assert states(data_dir) == before  # nothing released on a bad id


def test_store_location_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "billing", "list", "--data-dir", tmp_path / "missing")
    assert code == 2 and "no session store at" in err
    assert not (tmp_path / "missing").exists()  # not created by looking
    code, _, err = cli(capsys, "billing", "list")
    assert code == 2 and "--config" in err
    (tmp_path / "secc.db").write_bytes(b"not a database at all" * 100)
    code, _, err = cli(capsys, "billing", "list", "--data-dir", tmp_path)
    assert code == 2 and "error:" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("billing: {retry: {initial: -1}}\n")
    code, _, err = cli(capsys, "billing", "list", "--config", bad)
    assert code == 2 and "billing.retry" in err
    code, _, err = cli(capsys, "billing", "list", "--config", tmp_path / "none.yaml")
    assert code == 2 and "error:" in err


def test_retry_deliver_with_the_configured_webhook(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded_receiver(SECRET) as receiver:
        config = write_config(tmp_path, receiver.url, data_dir)
        code, out, _ = cli(capsys, "billing", "list", "--config", config)
        assert code == 0 and "(4 shown" in out
        code, out, err = cli(capsys, "billing", "retry", "--all", "--deliver", "--config", config)
        applied = set(receiver.snapshot()["applied"])
    assert code == 0, (out, err)
    assert "delivered 4, failed 0, held 0" in out
    assert applied == {f"rec-{n:04d}:payment" for n in (0, 1, 2, 4)}
    assert set(states(data_dir).values()) == {OutboxState.DELIVERED}


def test_retry_deliver_while_the_processor_is_down(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded_receiver(SECRET) as receiver:
        receiver.mode = "fail"
        config = write_config(tmp_path, receiver.url, data_dir)
        code, out, _ = cli(capsys, "billing", "retry", "rec-0000", "--deliver", "--config", config)
    assert code == 1
    assert "-> payment: failed HTTP 500" in out  # the oldest due item: the processor is down
    assert "delivered 0, failed 1, held 0" in out
    assert states(data_dir)["rec-0000"] is OutboxState.PENDING


def test_billing_command_in_a_subprocess(data_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "iso15118", "billing", "show", "rec-0002", "--data-dir", data_dir],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outbox"][0]["state"] == "held"
