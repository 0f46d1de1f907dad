"""EXI encode/decode speed of the generated pure-Python codec.

    python benchmarks/exi_bench.py [--repeat 7] [--min-time 0.2]

Prints µs per call (median of the repeats) for each message and its ratio to the C
reference figures in ../shared/corpus/README.md (libcbv2g, gcc -O2, same machine kind), then
the fastest repeat of each: on a shared virtual machine the median moves with the
neighbours' load, the fastest repeat much less (it is what the code costs undisturbed).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from iso15118 import exi

SESSION = "4758fdd348a5eb24"


def pv(value: int, unit: str, multiplier: int = 0) -> dict[str, Any]:
    return {"Multiplier": multiplier, "Unit": unit, "Value": value}


def v2g_message(body: dict[str, Any]) -> dict[str, Any]:
    """A DIN or ISO-2 V2G_Message (same shape) with a SessionID."""
    return {"V2G_Message": {"Header": {"SessionID": SESSION}, "Body": body}}


def current_demand_req(ev_status: dict[str, Any]) -> dict[str, Any]:
    """A CurrentDemandReq with every optional element (DIN and ISO-2 share the shape)."""
    return {
        "CurrentDemandReq": {
            "DC_EVStatus": ev_status,
            "EVTargetCurrent": pv(125, "A"),
            "EVMaximumVoltageLimit": pv(4500, "V", -1),
            "EVMaximumCurrentLimit": pv(300, "A"),
            "EVMaximumPowerLimit": pv(15000, "W", 1),
            "BulkChargingComplete": False,
            "ChargingComplete": False,
            "RemainingTimeToFullSoC": pv(1800, "s"),
            "RemainingTimeToBulkSoC": pv(1200, "s"),
            "EVTargetVoltage": pv(4020, "V", -1),
        }
    }


def iso2_current_demand_req() -> dict[str, Any]:
    return v2g_message(
        current_demand_req({"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 55})
    )


def iso2_charge_parameter_discovery_res() -> dict[str, Any]:
    tuples = []
    for tuple_id in (1, 2, 3):
        entries = [
            {
                "RelativeTimeInterval": {"start": 7200 * i},
                "PMax": pv(11000 - 500 * i, "W"),
            }
            for i in range(12)
        ]
        tariff = [
            {
                "RelativeTimeInterval": {"start": 7200 * i},
                "EPriceLevel": i % 4,
                "ConsumptionCost": [
                    {
                        "startValue": pv(0, "Wh"),
                        "Cost": [{"costKind": "relativePricePercentage", "amount": 50 + i}],
                    }
                ],
            }
            for i in range(12)
        ]
        tariff[-1]["RelativeTimeInterval"]["duration"] = 7200
        entries[-1]["RelativeTimeInterval"]["duration"] = 7200
        tuples.append(
            {
                "SAScheduleTupleID": tuple_id,
                "PMaxSchedule": {"PMaxScheduleEntry": entries},
                "SalesTariff": {
                    "@Id": f"tariff{tuple_id}",
                    "SalesTariffID": tuple_id,
                    "NumEPriceLevels": 4,
                    "SalesTariffEntry": tariff,
                },
            }
        )
    return v2g_message(
        {
            "ChargeParameterDiscoveryRes": {
                "ResponseCode": "OK",
                "EVSEProcessing": "Finished",
                "SAScheduleList": {"SAScheduleTuple": tuples},
                "DC_EVSEChargeParameter": {
                    "DC_EVSEStatus": {
                        "NotificationMaxDelay": 0,
                        "EVSENotification": "None",
                        "EVSEIsolationStatus": "Valid",
                        "EVSEStatusCode": "EVSE_Ready",
                    },
                    "EVSEMaximumCurrentLimit": pv(400, "A"),
                    "EVSEMaximumPowerLimit": pv(15000, "W", 1),
                    "EVSEMaximumVoltageLimit": pv(9200, "V", -1),
                    "EVSEMinimumCurrentLimit": pv(0, "A"),
                    "EVSEMinimumVoltageLimit": pv(1500, "V", -1),
                    "EVSEPeakCurrentRipple": pv(5, "A"),
                },
            }
        }
    )


def certificate(seed: int, size: int) -> str:
    return bytes((seed * 31 + i * 7) & 0xFF for i in range(size)).hex()


def iso2_payment_details_req() -> dict[str, Any]:
    return v2g_message(
        {
            "PaymentDetailsReq": {
                "eMAID": "DEABCC123456789",
                "ContractSignatureCertChain": {
                    "@Id": "id1",
                    "Certificate": certificate(1, 640),
                    "SubCertificates": {"Certificate": [certificate(2, 620), certificate(3, 600)]},
                },
            }
        }
    )


def din_current_demand_req() -> dict[str, Any]:
    status = {
        "EVReady": True,
        "EVCabinConditioning": False,
        "EVRESSConditioning": False,
        "EVErrorCode": "NO_ERROR",
        "EVRESSSOC": 55,
    }
    return v2g_message(current_demand_req(status))  # DIN's V2G_Message has the same shape


def iso20_dc_charge_loop_req() -> dict[str, Any]:
    def rn(value: int, exponent: int = 0) -> dict[str, Any]:
        return {"Exponent": exponent, "Value": value}

    return {
        "DC_ChargeLoopReq": {
            "Header": {"SessionID": SESSION, "TimeStamp": 1718607534},
            "DisplayParameters": {
                "PresentSOC": 55,
                "TargetSOC": 80,
                "RemainingTimeToTargetSOC": 900,
            },
            "MeterInfoRequested": False,
            "EVPresentVoltage": rn(4020, -1),
            "Scheduled_DC_CLReqControlMode": {
                "EVTargetEnergyRequest": rn(400, 2),
                "EVMaximumEnergyRequest": rn(600, 2),
                "EVMinimumEnergyRequest": rn(1000),
                "EVTargetCurrent": rn(125),
                "EVTargetVoltage": rn(4020, -1),
                "EVMaximumChargePower": rn(150, 3),
                "EVMinimumChargePower": rn(0),
                "EVMaximumChargeCurrent": rn(300),
                "EVMaximumVoltage": rn(4500, -1),
            },
        }
    }


# name, schema, builder, C reference µs (encode, decode) from ../shared/corpus/README.md
CASES: list[tuple[str, str, Callable[[], dict[str, Any]], tuple[float, float] | None]] = [
    ("ISO-2 CurrentDemandReq", "iso2", iso2_current_demand_req, (0.73, 0.76)),
    (
        "ISO-2 DC ChargeParameterDiscoveryRes, full SAScheduleList",
        "iso2",
        iso2_charge_parameter_discovery_res,
        (15.0, 15.0),
    ),
    (
        "ISO-2 PaymentDetailsReq, 3-certificate chain",
        "iso2",
        iso2_payment_details_req,
        (24.0, 22.0),
    ),
    ("DIN CurrentDemandReq", "din", din_current_demand_req, None),
    ("ISO-20 DC_ChargeLoopReq", "iso20-dc", iso20_dc_charge_loop_req, (1.3, 1.2)),
]


def per_call_us(fn: Callable[[], object], repeat: int, min_time: float) -> tuple[float, float]:
    """µs per call: the median and the fastest of `repeat` runs of `min_time` seconds."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(number, int(number * min_time / 0.2))
    runs = timer.repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e6, min(runs) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per repeat")
    args = parser.parse_args(argv)
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"median of {args.repeat} repeats"
    )
    print(
        f"{'message':58} {'bytes':>5} {'encode µs':>10} {'decode µs':>10} {'vs C enc/dec':>14}"
        f" {'fastest enc/dec':>16}"
    )
    for name, schema, build, reference in CASES:
        message = exi.from_json(schema, build())
        data = exi.encode(schema, message)
        assert exi.decode(schema, data) == message
        enc, enc_best = per_call_us(
            lambda m=message, s=schema: exi.encode(s, m), args.repeat, args.min_time
        )
        dec, dec_best = per_call_us(
            lambda d=data, s=schema: exi.decode(s, d), args.repeat, args.min_time
        )
        ratio = f"{enc / reference[0]:5.1f}x/{dec / reference[1]:5.1f}x" if reference else "-"
        fastest = f"{enc_best:.1f}/{dec_best:.1f}"
        print(f"{name:58} {len(data):5} {enc:10.1f} {dec:10.1f} {ratio:>14} {fastest:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
