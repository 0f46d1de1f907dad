"""`iso15118 demo` (README's first quick-start command) runs to the end on this machine: the
Plug & Charge session completes, the car is shown the signed tariff, and the billing record
reaches the payment processor through the outbox."""

from __future__ import annotations

import io
import re
from pathlib import Path

from iso15118.demo import run_demo


def test_demo_session_bills_through_the_outbox(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(out, tmp_path) == 0, out.getvalue()
    text = out.getvalue()
    assert "EV: finished" in text
    assert "CertificateInstallationReq    OK" in text
    assert "(signature valid)" in text
    assert re.search(r"outbox -> payment: delivered, processor reference INV-\d+", text)
    pattern = r"settled \S+ \(HMAC verified\): contract (\w+), (\d+) Wh, ([\d.]+) EUR"
    settled = re.search(pattern, text)
    assert settled is not None, text
    assert f'"contract_id": "{settled.group(1)}"' in text
    assert f'"total": "{settled.group(3)}"' in text
