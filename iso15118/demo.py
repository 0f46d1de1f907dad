"""`iso15118 demo`: a whole ISO 15118-2 DC Plug & Charge session on this machine.

No root, no hardware, no network: a test PKI is created in a temporary directory, the SECC
listens for TLS on ::1 with a simulated EVSE and a local backend (SQLite store, local
certificate provisioning), and the EV simulator connects, installs a contract certificate,
authorises with it and charges. The messages are printed as they are answered, then the
billing record as the store keeps it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives import serialization

__all__ = ["describe", "run_demo"]


def _value(pv: Any) -> str:
    if pv is None:
        return "-"
    number = pv.Value * 10**pv.Multiplier
    unit = getattr(getattr(pv, "Unit", None), "value", "") or ""
    return f"{number:g} {unit}".strip()


def _evse_id(response: Any) -> str:
    """ISO-2 sends the EVSEID as text, DIN as hexBinary (shown as hex)."""
    value = response.EVSEID
    return value.hex().upper() if isinstance(value, bytes) else str(value)


def describe(request: Any, response: Any) -> str:
    """A short human summary of one exchange (the fields a technician looks at)."""
    name = type(request).__name__.removesuffix("Type")
    res = response
    details: dict[str, Callable[[], str]] = {
        "SessionSetupReq": lambda: f"EVCCID {request.EVCCID.hex()} -> EVSEID {_evse_id(res)}",
        "ServiceDiscoveryReq": lambda: (
            "payment " + "/".join(p.value for p in res.PaymentOptionList.PaymentOption)
        ),
        "PaymentServiceSelectionReq": lambda: request.SelectedPaymentOption.value,
        "CertificateInstallationReq": lambda: f"new contract {getattr(res.eMAID, 'value', '?')}",
        "PaymentDetailsReq": lambda: f"eMAID {request.eMAID}",
        "AuthorizationReq": lambda: res.EVSEProcessing.value,
        "ChargeParameterDiscoveryReq": lambda: request.RequestedEnergyTransferMode.value,
        "CableCheckReq": lambda: res.EVSEProcessing.value,
        "PreChargeReq": lambda: (
            f"target {_value(request.EVTargetVoltage)}, present {_value(res.EVSEPresentVoltage)}"
        ),
        "PowerDeliveryReq": lambda: request.ChargeProgress.value,
        "CurrentDemandReq": lambda: (
            f"SoC {request.DC_EVStatus.EVRESSSOC}% target "
            f"{_value(request.EVTargetVoltage)} {_value(request.EVTargetCurrent)}, present "
            f"{_value(res.EVSEPresentVoltage)} {_value(res.EVSEPresentCurrent)}"
        ),
        "MeteringReceiptReq": lambda: f"meter {request.MeterInfo.MeterReading} Wh signed",
        "WeldingDetectionReq": lambda: f"present {_value(res.EVSEPresentVoltage)}",
        "SessionStopReq": lambda: request.ChargingSession.value,
    }
    try:
        return details[name]() if name in details else ""
    except (AttributeError, TypeError):
        return ""


async def _demo(directory: Path, out: TextIO) -> int:
    from evcc.client import run_ev
    from evcc.config import EvccConfig, Payment, PncCredentials
    from iso15118.sap import AppProtocol
    from iso15118.transport.tls import (
        CertificateChain,
        Iso2ClientConfig,
        Iso2ServerConfig,
        iso2_client_context,
        iso2_server_context,
    )
    from pki.create import create_pki, write_pki
    from pki.profiles import Role, Standard
    from pki.store import TrustStore
    from secc.backend import LocalBackend
    from secc.context import SeccConfig
    from secc.events import MessageExchanged, SessionEvent
    from secc.provisioning import LocalProvisioning
    from secc.records_json import billing_record_to_json
    from secc.server import SeccServer, SeccServerConfig
    from secc.simulated import SimulatedEVSE
    from secc.store import SessionStore

    now = datetime.now(UTC)
    pki = create_pki(Standard.ISO2, at=now)
    write_pki(pki, directory / "pki")
    print(f"test PKI written to {directory / 'pki'}", file=out)

    server_tls = iso2_server_context(
        Iso2ServerConfig(
            chain=CertificateChain(
                certificates=(directory / "pki" / "chains" / "secc.pem",),
                private_key=directory / "pki" / "keys" / "secc.key.pem",
            )
        )
    )
    client_tls = iso2_client_context(
        Iso2ClientConfig(trust_anchors=(directory / "pki" / "trust" / "v2g-root.pem",))
    )
    contract_trust = TrustStore(
        [pki[Role.MO_ROOT].certificate, pki[Role.V2G_ROOT].certificate],
        [pki[Role.MO_SUB_CA_1].certificate, pki[Role.MO_SUB_CA_2].certificate],
    )
    store = SessionStore(directory / "secc.db")
    backend = LocalBackend(
        store=store, allowed_emaids=["*"], provisioning=LocalProvisioning.from_test_pki(pki)
    )
    evse = SimulatedEVSE(meter_wh=125_000, current_ramp_rate=2000.0)

    def show(event: SessionEvent) -> None:
        if isinstance(event, MessageExchanged):
            detail = describe(event.request, event.response)
            print(f"  {event.request_name:<29} {event.response_code:<26} {detail}", file=out)

    server = SeccServer(
        SeccServerConfig(
            protocol=SeccConfig(contract_trust=contract_trust),
            host="::1",
            tcp_port=None,
            tls_port=0,
            tls_context=server_tls,
        ),
        controller=evse,
        backend=backend,
        store=store,
        observers=(show,),
    )
    der = serialization.Encoding.DER
    ev = EvccConfig(
        protocols=(AppProtocol.ISO2, AppProtocol.DIN),
        payment=Payment.PNC,
        tls=True,
        initial_soc=40.0,
        target_soc=80.0,
        max_charge_loops=20,
        loop_interval=0.05,
        pnc=PncCredentials(
            oem_provisioning_cert=pki[Role.OEM_PROVISIONING].certificate.public_bytes(der),
            oem_provisioning_key=pki[Role.OEM_PROVISIONING].key,  # type: ignore[arg-type]
            root_certificates=(pki[Role.V2G_ROOT].certificate.public_bytes(der),),
            install_certificate=True,
        ),
    )
    async with server:
        endpoint = server.tls_endpoint
        assert endpoint is not None
        print(f"SECC listening for TLS on [{endpoint.host}]:{endpoint.port}", file=out)
        print("ISO 15118-2 DC Plug & Charge session (request, response code, details):", file=out)
        result = await run_ev(
            ev,
            endpoint.host,
            endpoint.port,
            ssl_context=client_tls,
            evse_hook=lambda change: evse.set_cp_state(change.state),
        )
        for _ in range(100):  # the SECC stores the record once the car's stop is answered
            if server.records:
                break
            await asyncio.sleep(0.02)
    print(
        f"EV: {'finished' if result.ok else 'FAILED'} ({result.reason}); "
        f"{result.requests_sent} requests, {result.energy_wh:.1f} Wh, "
        f"SoC {result.final_soc:.2f} %",
        file=out,
    )
    if not server.records:
        print("no billing record: the session did not finish", file=out)
        return 1
    stored = store.billing_record(server.records[-1].record_id)
    assert stored is not None
    record = billing_record_to_json(stored)
    for receipt in record.get("receipts", []):
        receipt["exi"] = receipt["exi"][:32] + "..."
    print("billing record (as stored in secc.db):", file=out)
    print(json.dumps(record, indent=2), file=out)
    store.close()
    return 0 if getattr(result, "ok", False) else 1


def run_demo(out: TextIO = sys.stdout, directory: Path | None = None) -> int:
    """Run the demo; returns the exit code (0 when the session completed)."""
    if directory is not None:
        return asyncio.run(_demo(directory, out))
    with tempfile.TemporaryDirectory(prefix="iso15118-demo-") as tmp:
        return asyncio.run(_demo(Path(tmp), out))
