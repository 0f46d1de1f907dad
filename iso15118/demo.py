"""`iso15118 demo`: a whole ISO 15118-2 DC Plug & Charge session on this machine.

No root, no hardware, no network: a test PKI is created in a temporary directory, the SECC
listens for TLS on ::1 with a simulated EVSE and a local backend (SQLite store, local
certificate provisioning), and the EV simulator connects, installs a contract certificate,
authorises with it and charges under a tariff whose SalesTariff it is shown (signed, as Plug &
Charge requires). The messages are printed as they are answered; then the billing record as
the store keeps it, and what the payment processor (a local webhook receiver that checks the
HMAC signature) was handed through the outbox.
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


class _PaymentReceiver:
    """The payment processor's side of the demo: one aiohttp endpoint on 127.0.0.1 that
    checks each record's HMAC signature and applies each idempotency key once."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.settled: dict[str, dict[str, Any]] = {}
        self._runner: Any = None
        self.url = ""

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/billing", self._billing)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/billing"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _billing(self, request: Any) -> Any:
        import time

        from aiohttp import web

        from secc.billing.webhook import SignatureError, verify_signature

        body = await request.read()
        try:
            verify_signature(self.secret, request.headers, body, time.time())
        except SignatureError as exc:
            return web.json_response({"error": str(exc)}, status=401)
        message = json.loads(body)
        key = message["idempotency_key"]
        duplicate = key in self.settled
        if not duplicate:
            self.settled[key] = message["record"]
        reference = f"INV-{list(self.settled).index(key) + 1:05d}"
        return web.json_response({"reference": reference, "duplicate": duplicate})


async def _demo(directory: Path, out: TextIO) -> int:
    from decimal import Decimal

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
    from secc.billing.outbox import DeliveryWorker
    from secc.billing.webhook import WebhookProcessor
    from secc.context import SeccConfig
    from secc.events import MessageExchanged, SessionEvent
    from secc.provisioning import LocalProvisioning
    from secc.records_json import billing_record_to_json
    from secc.server import SeccServer, SeccServerConfig
    from secc.simulated import SimulatedEVSE
    from secc.station import Station
    from secc.store import OutboxState, SessionStore
    from secc.tariff import SalesTariffSigner, Tariff

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
    tariff = Tariff(
        id="demo",
        currency="EUR",
        energy_price=Decimal("0.39"),
        time_price=Decimal("0.60"),
        session_fee=Decimal("0.50"),
    )
    signer = SalesTariffSigner(
        key=pki[Role.MO_SUB_CA_2].key,  # type: ignore[arg-type]
        certificate=pki[Role.MO_SUB_CA_2].certificate,
    )
    store = SessionStore(directory / "secc.db")
    backend = LocalBackend(
        store=store, allowed_emaids=["*"], provisioning=LocalProvisioning.from_test_pki(pki)
    )
    evse = SimulatedEVSE(meter_wh=125_000, current_ramp_rate=2000.0)
    receiver = _PaymentReceiver(secret=b"demo webhook secret")
    await receiver.start()
    processor = WebhookProcessor(url=receiver.url, secret=receiver.secret.decode())

    def show(event: SessionEvent) -> None:
        if isinstance(event, MessageExchanged):
            detail = describe(event.request, event.response)
            print(f"  {event.request_name:<29} {event.response_code:<26} {detail}", file=out)

    server = SeccServer(
        SeccServerConfig(
            protocol=SeccConfig(
                contract_trust=contract_trust, tariff=tariff, sales_tariff_signer=signer
            ),
            host="::1",
            tcp_port=None,
            tls_port=0,
            tls_context=server_tls,
        ),
        controller=evse,
        backend=backend,
        store=store,
        observers=(show,),
        processor=processor,
    )
    station = Station(
        [server], store=store, delivery=DeliveryWorker(store, {processor.name: processor})
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
    try:
        async with station:
            endpoint = server.tls_endpoint
            assert endpoint is not None
            print(f"SECC listening for TLS on [{endpoint.host}]:{endpoint.port}", file=out)
            print(
                "ISO 15118-2 DC Plug & Charge session (request, response code, details):", file=out
            )
            result = await run_ev(
                ev,
                endpoint.host,
                endpoint.port,
                ssl_context=client_tls,
                evse_hook=lambda change: evse.set_cp_state(change.state),
            )
            # the outbox hands the record to the processor once it is stored
            for _ in range(500):
                done = store.outbox_counts()[OutboxState.DELIVERED]
                if done and not store.outbox_counts()[OutboxState.PENDING]:
                    break
                await asyncio.sleep(0.02)
        shown = getattr(result.sales_tariff, "SalesTariffDescription", None)
        print(
            f"EV: {'finished' if result.ok else 'FAILED'} ({result.reason}); "
            f"{result.requests_sent} requests, {result.energy_wh:.1f} Wh, "
            f"SoC {result.final_soc:.2f} %",
            file=out,
        )
        verified = {True: "signature valid", False: "signature INVALID", None: "unsigned"}
        print(
            f"EV was shown the tariff {shown!r} ({verified[result.sales_tariff_verified]})",
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
        entries = store.outbox_entries(record_id=stored.record_id)
        for entry in entries:
            state = entry.state.value
            if entry.state is OutboxState.DELIVERED:
                state += f", processor reference {entry.reference}"
            print(f"outbox -> {entry.destination}: {state}", file=out)
        for key, settled in receiver.settled.items():
            price = settled.get("price") or {}
            print(
                f"payment processor settled {key} (HMAC verified): contract "
                f"{settled.get('contract_id')}, {stored.energy_wh} Wh, "
                f"{price.get('total', '0')} {price.get('currency', '')}",
                file=out,
            )
        delivered = bool(entries) and all(e.state is OutboxState.DELIVERED for e in entries)
        return 0 if result.ok and delivered else 1
    finally:
        await processor.close()
        await receiver.close()
        store.close()


def run_demo(out: TextIO = sys.stdout, directory: Path | None = None) -> int:
    """Run the demo; returns the exit code (0 when the session completed)."""
    if directory is not None:
        return asyncio.run(_demo(directory, out))
    with tempfile.TemporaryDirectory(prefix="iso15118-demo-") as tmp:
        return asyncio.run(_demo(Path(tmp), out))
