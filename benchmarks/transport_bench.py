"""Loopback round trip of one V2GTP + EXI request/response over TCP, TLS 1.2 and TLS 1.3.

    python benchmarks/transport_bench.py [--iterations 2000] [--warmup 200]

The EV side encodes an ISO 15118-2 CurrentDemandReq, frames and sends it over [::1]; the SECC
side (same process, same event loop) decodes it and answers with a fixed, pre-encoded
CurrentDemandRes, which the EV decodes. Each round trip is timed on its own; the script prints
the median and the 99th percentile in µs, and the same with the EXI work left out ("framing
only"), for plain TCP, TLS 1.2 (ISO 15118-2 profile, P-256) and TLS 1.3 (ISO 15118-20, P-521,
mutual). Test certificates are generated on the fly (needs `cryptography`, from the test
extra). Print only: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import transport_pki  # noqa: E402  (test helper: generates the test PKI)

from iso15118 import exi  # noqa: E402
from iso15118.transport import tls  # noqa: E402
from iso15118.transport.connection import V2GTPConnection  # noqa: E402
from iso15118.transport.tcp import ServerConfig, V2GTPServer, open_v2gtp_connection  # noqa: E402
from iso15118.v2gtp import PayloadType  # noqa: E402

SESSION = "f0e5cb4e8e5fa0b5"


def pv(value: int, unit: str, multiplier: int = 0) -> dict[str, Any]:
    return {"Multiplier": multiplier, "Unit": unit, "Value": value}


def message(body: dict[str, Any]) -> dict[str, Any]:
    return {"V2G_Message": {"Header": {"SessionID": SESSION}, "Body": body}}


CURRENT_DEMAND_REQ = message(
    {
        "CurrentDemandReq": {
            "DC_EVStatus": {"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 55},
            "EVTargetCurrent": pv(125, "A"),
            "EVMaximumVoltageLimit": pv(4500, "V", -1),
            "ChargingComplete": False,
            "EVTargetVoltage": pv(4020, "V", -1),
        }
    }
)
# As a Polestar 2 session received it from EVerest (corpus vector v096).
CURRENT_DEMAND_RES = message(
    {
        "CurrentDemandRes": {
            "ResponseCode": "OK",
            "DC_EVSEStatus": {
                "NotificationMaxDelay": 0,
                "EVSENotification": "None",
                "EVSEIsolationStatus": "Valid",
                "EVSEStatusCode": "EVSE_Ready",
            },
            "EVSEPresentVoltage": pv(4518, "V", -1),
            "EVSEPresentCurrent": pv(0, "A"),
            "EVSECurrentLimitAchieved": False,
            "EVSEVoltageLimitAchieved": False,
            "EVSEPowerLimitAchieved": False,
            "EVSEMaximumVoltageLimit": pv(900, "V"),
            "EVSEMaximumCurrentLimit": pv(2212, "A", -2),
            "EVSEMaximumPowerLimit": pv(10000, "W"),
            "EVSEID": "DE*PNX*E12345*1",
            "SAScheduleTupleID": 1,
            "MeterInfo": {
                "MeterID": "powermeter_dc",
                "MeterReading": 527217,
                "TMeter": 1680763138,
            },
            "ReceiptRequired": False,
        }
    }
)

REQUEST = exi.from_json("iso2", CURRENT_DEMAND_REQ)
RESPONSE_EXI = exi.encode("iso2", exi.from_json("iso2", CURRENT_DEMAND_RES))
REQUEST_EXI = exi.encode("iso2", REQUEST)


async def secc(conn: V2GTPConnection) -> None:
    """Decode each request (when it is EXI) and answer with the fixed response."""
    while True:
        request = await conn.receive()
        if request.payload[:1] == b"\x80":
            exi.decode("iso2", request.payload)
        await conn.send(PayloadType.SAP, RESPONSE_EXI)


RoundTrip = Callable[[V2GTPConnection], Awaitable[None]]


async def with_exi(conn: V2GTPConnection) -> None:
    await conn.send(PayloadType.SAP, exi.encode("iso2", REQUEST))
    exi.decode("iso2", (await conn.receive()).payload)


async def framing_only(conn: V2GTPConnection) -> None:
    await conn.send(PayloadType.SAP, b"\x00" + REQUEST_EXI[1:])  # not EXI: the SECC skips decode
    await conn.receive()


async def measure(
    server_ssl: ssl.SSLContext | None,
    client_ssl: ssl.SSLContext | None,
    round_trip: RoundTrip,
    iterations: int,
    warmup: int,
) -> list[float]:
    async with V2GTPServer(secc, ServerConfig(ssl=server_ssl)) as server:
        conn = await open_v2gtp_connection("::1", server.endpoint.port, ssl=client_ssl)
        async with conn:
            for _ in range(warmup):
                await round_trip(conn)
            samples = []
            clock = time.perf_counter
            for _ in range(iterations):
                start = clock()
                await round_trip(conn)
                samples.append((clock() - start) * 1e6)
    return samples


def contexts(folder: Path) -> dict[str, tuple[ssl.SSLContext | None, ssl.SSLContext | None]]:
    pki = transport_pki.generate(folder)

    def chain(leaf: transport_pki.LeafFiles) -> tls.CertificateChain:
        return tls.CertificateChain(certificates=leaf.chain_pem, private_key=leaf.key_pem)

    iso2 = (
        tls.iso2_server_context(tls.Iso2ServerConfig(chain=chain(pki.iso2_secc))),
        tls.iso2_client_context(tls.Iso2ClientConfig(trust_anchors=(pki.iso2_v2g_root,))),
    )
    iso20 = (
        tls.iso20_server_context(
            tls.Iso20ServerConfig(chain=chain(pki.iso20_secc), trust_anchors=(pki.iso20_oem_root,))
        ),
        tls.iso20_client_context(
            tls.Iso20ClientConfig(
                chain=chain(pki.iso20_vehicle), trust_anchors=(pki.iso20_v2g_root,)
            )
        ),
    )
    return {"TCP": (None, None), "TLS 1.2 (ISO-2)": iso2, "TLS 1.3 (ISO-20)": iso20}


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args(argv)
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {ssl.OPENSSL_VERSION}; "
        f"CurrentDemandReq {len(REQUEST_EXI)} B, CurrentDemandRes {len(RESPONSE_EXI)} B; "
        f"{args.iterations} round trips after {args.warmup} warm-up"
    )
    print(f"{'transport':<18} {'work':<14} {'median µs':>10} {'p99 µs':>10}")
    with tempfile.TemporaryDirectory(prefix="transport-bench-") as folder:
        for name, (server_ssl, client_ssl) in contexts(Path(folder)).items():
            for label, round_trip in (("V2GTP+EXI", with_exi), ("framing only", framing_only)):
                samples = asyncio.run(
                    measure(server_ssl, client_ssl, round_trip, args.iterations, args.warmup)
                )
                print(
                    f"{name:<18} {label:<14} {statistics.median(samples):>10.1f} "
                    f"{percentile(samples, 0.99):>10.1f}"
                )


if __name__ == "__main__":
    main()
