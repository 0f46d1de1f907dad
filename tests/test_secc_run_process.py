"""`iso15118 secc run` as an operator runs it: a separate process with a YAML file, an EV
simulator charging against it over TCP, the station API with a bearer token over real HTTP
(`iso15118 status`, bad tokens, bad input), billing to a webhook, and a clean SIGTERM stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from billing_receiver import threaded_receiver

SECRET = b"process-test-secret"
TOKEN = "operator-token-for-the-process-test"
ROOT = Path(__file__).resolve().parent.parent


def _free_port(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _request(
    url: str, *, token: str | None = TOKEN, method: str = "GET", body: bytes | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_secc_run_serves_bills_and_answers_the_api(tmp_path: Path) -> None:
    v2g_port = _free_port(socket.AF_INET6, "::1")
    api_port = _free_port(socket.AF_INET, "127.0.0.1")
    (tmp_path / "api-token").write_text(TOKEN + "\n")
    (tmp_path / "webhook-secret").write_bytes(SECRET)
    ev_yaml = (ROOT / "examples" / "ev.yaml").read_text()
    ev_yaml = ev_yaml.replace("max_charge_loops: null", "max_charge_loops: 10")
    assert "max_charge_loops: 10" in ev_yaml
    (tmp_path / "ev.yaml").write_text(ev_yaml)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    with threaded_receiver(SECRET) as receiver:
        (tmp_path / "secc.yaml").write_text(
            f"""
network: {{host: "::1", tcp_port: {v2g_port}}}
protocols: [iso2]
payment_options: [eim]
evse: {{options: {{evse_id: "DE*ABC*E0000007*1", cp_state: C, current_ramp_rate: 2000}}}}
backend: {{options: {{free_charging: true}}}}
tariff: {{id: std, currency: EUR, energy_price: 0.39, session_fee: 0.50}}
site: {{max_power: 40000}}
billing:
  processor:
    class: "secc.billing.webhook:WebhookProcessor"
    options: {{url: "{receiver.url}", secret_file: webhook-secret}}
  retry: {{initial: 0.2, max: 1}}
api: {{port: {api_port}, token_file: api-token}}
data_dir: data
log_level: warning
"""
        )
        secc = subprocess.Popen(
            [sys.executable, "-m", "iso15118", "secc", "run", "--config", "secc.yaml"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{api_port}"
        try:
            _wait_for(lambda: _probe(base), 20, "the station API")
            status, body = _request(f"{base}/api/v1/status")
            assert status == 200
            assert body["site_limit_w"] == 40000
            assert [e["evse_id"] for e in body["evses"]] == ["DE*ABC*E0000007*1"]
            # bad tokens and bad input
            assert _request(f"{base}/api/v1/status", token=None)[0] == 401
            assert _request(f"{base}/api/v1/status", token="wrong")[0] == 401
            assert _request(f"{base}/metrics", token="wrong")[0] == 401
            limit = f"{base}/api/v1/site/limit"
            assert _request(limit, method="PUT", body=b"{not json")[0] == 400
            assert _request(limit, method="PUT", body=b'{"watts": -5}')[0] in (400, 422)
            assert _request(f"{base}/api/v1/sessions/nope")[0] in (400, 404)
            assert _request(limit, method="PUT", body=b'{"watts": 30000}')[0] == 200

            car = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "iso15118",
                    "ev",
                    "run",
                    "--config",
                    str(tmp_path / "ev.yaml"),
                    "--host",
                    "::1",
                    "--port",
                    str(v2g_port),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert car.returncode == 0, car.stdout + car.stderr
            delivered = _wait_for(lambda: receiver.applied, 20, "the billing record")
            (record,) = delivered.values()
            assert record["evse_id"] == "DE*ABC*E0000007*1"
            assert record["price"]["currency"] == "EUR"

            sessions = _request(f"{base}/api/v1/sessions")[1]
            session_id = record["session_id"]
            assert session_id in json.dumps(sessions)
            timeline = _request(f"{base}/api/v1/sessions/{session_id}/timeline")[1]
            assert "SessionSetupReq" in json.dumps(timeline)
            outbox = _wait_for(
                lambda: _request(f"{base}/api/v1/status")[1]["outbox"].get("delivered"),
                10,
                "the outbox to show the delivery",
            )
            assert outbox == 1
            printed = subprocess.run(
                [sys.executable, "-m", "iso15118", "status", "--config", "secc.yaml"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert printed.returncode == 0, printed.stderr
            assert "DE*ABC*E0000007*1" in printed.stdout
            assert "Site limit: 30.0 kW" in printed.stdout
            assert "1 delivered" in printed.stdout
        finally:
            secc.send_signal(signal.SIGTERM)
            try:
                output, _ = secc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                secc.kill()
                output, _ = secc.communicate()
        assert secc.returncode == 0, output
        assert "Traceback" not in output, output
        assert "Unclosed" not in output, output


def _probe(base: str) -> bool:
    try:
        return _request(f"{base}/api/v1/status")[0] == 200
    except (OSError, ValueError):
        return False
