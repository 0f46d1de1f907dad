"""Real cars' DIN SPEC 70121 requests against the DIN SECC.

The requests come from public packet captures of real cars charging at EVerest chargers
(/work/shared/corpus/pcaps) and from the public test vectors. They carry what cars really
send: physical values without Unit, multipliers of -1 and -2, DC_EVStatus variants, a
Tesla ContractAuthenticationReq with a trailing byte, ChargingProfiles, long CurrentDemand
loops. A capture is replayed in order with the SECC's own SessionID; where the charger of
the capture kept the car looping (CableCheck, ContractAuthentication) longer than ours, the
car's extra repetitions are skipped, and where ours answers Ongoing once more than the
recorded charger did, the car's last request is repeated.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from paths import CORPUS, require
from secc_helpers import Harness
from test_secc_din import (
    accepted,
    to_authentication,
    to_cable_check,
    to_charge_parameters,
    to_charging,
    to_pre_charge,
)

from exi_schemas import din
from iso15118 import exi, sap
from secc.din import convert
from secc.din.spec import SPEC
from secc.din.state import State
from secc.din.table import TRANSITIONS
from secc.evse import ControlPilotState, EvseLimits, IsolationStatus

pytest.importorskip("scapy")
from iso15118.trace import Direction, read_capture

#: roomy limits, so the cars' own values decide (800 V cars, 350 kW)
LIMITS = EvseLimits(max_voltage=1000, max_current=500, max_power=350_000, min_voltage=50)
#: real cars at EVerest chargers (EVerest/logfiles, Apache-2.0): small whole sessions
CAPTURES = [
    "EVerest+logfiles__BMW__iX_2024-02-27__2024-02-27T13_26_06.131Z-1_din_spec__ethernet-traffic.dump",
    "EVerest+logfiles__BYD__Atto3__2023-04-18T15_30_40.007Z-1_config-dc-dinspec__ethernet-traffic.dump",
    "EVerest+logfiles__Citroen__eC4__2024-02-29T12_38_14.680Z-citroen-ec4-1_din_spec__ethernet-traffic.dump",
    "EVerest+logfiles__Hyundai__Kona_2017__din_spec_70121__kona1.dump",
    "EVerest+logfiles__MG__MG4_electric__dinspec-DC.dump",
    "EVerest+logfiles__Mercedes-Benz__EQE__2023-04-18T15_18_18.778Z-1_config-dc-dinspec__ethernet-traffic.dump",
    "EVerest+logfiles__Opel__Ampera-E__2023-01-13-din_spec_70121__session__ampera_dc_din_1.dump",
    "EVerest+logfiles__Subaru__Solterra__2023-04-18T15_21_42.626Z-1_config-dc-dinspec__ethernet-traffic.dump",
    "EVerest+logfiles__Tesla__Model_Y_11.1__din_spec_70121__2023-01-18-tesla_y_dinspec_infypower__teslay_dc_infy_0.dump",
    "EVerest+logfiles__VW__id.4_fw_3.5__2023-04-18T15_40_33.744Z-1_config-dc-dinspec__ethernet-traffic.dump",
    "EVerest+logfiles__XPENG__P7_performance__dinspec-DC.dump",
]


def car_requests(path: Path) -> dict[int, list[Any]]:
    """The car's DIN request bodies, per TCP connection."""
    out: dict[int, list[Any]] = defaultdict(list)
    for message in read_capture(path):
        if message.direction is not Direction.EV_TO_EVSE or message.schema is None:
            continue
        if "din" not in str(message.schema).lower():
            continue
        out[message.connection].append(SPEC.request_of(exi.decode("din", message.payload)))
    return out


class Replay:
    """Feeds a car's requests to one SECC session, playing the EVSE's part in the status."""

    def __init__(self) -> None:
        self.h = Harness()
        self.h.set_status(limits=LIMITS)
        self.h.handshake([sap.AppProtocol.DIN])
        self.h.session.handle_event(accepted(), self.h.now)  # the backend says yes at once
        self.last: Any = None
        self.sent = 0
        self.names: set[str] = set()

    def feed(self, request: Any) -> None:
        kind = type(request)
        repeats = 0
        while kind not in TRANSITIONS[self.state]:
            if self.last is not None and kind is type(self.last):
                return  # the recorded charger kept the car looping longer than ours
            assert self.last is not None and repeats < 3, f"{kind.__name__} in {self.state}"
            self._send(self.last)
            repeats += 1
        self._send(request)
        self.last = request

    @property
    def state(self) -> State:
        state = self.h.session.state
        assert isinstance(state, State)
        return state

    def _send(self, request: Any) -> None:
        h = self.h
        if isinstance(request, din.CableCheckReqType):
            h.set_status(cp_state=ControlPilotState.C)
            if h.session.data is not None and h.session.data.cable_check_started:
                h.set_status(isolation=IsolationStatus.VALID)
        if isinstance(request, din.PreChargeReqType | din.CurrentDemandReqType):
            target = convert.value(request.EVTargetVoltage)
            h.set_status(present_voltage=target, voltage_reached=True)
        h.advance(0.2)
        response = h.send(request)
        assert response is not None, f"no answer to {type(request).__name__}"
        code = str(response.ResponseCode)
        assert code.startswith("OK"), f"{type(request).__name__} -> {code} in {self.state}"
        self.sent += 1
        self.names.add(SPEC.name_of(request))


@pytest.mark.parametrize("name", CAPTURES, ids=lambda n: "-".join(n.split("__")[1:3])[:24])
def test_a_real_car_session_replays_without_failure(name: str) -> None:
    path = require(CORPUS / "pcaps" / name)
    connections = car_requests(path)
    assert connections
    whole = False
    for requests in connections.values():
        replay = Replay()
        for request in requests:
            replay.feed(request)
        whole = whole or replay.state in (State.CHARGING, State.WAIT_SESSION_STOP)
        if "CurrentDemandReq" in replay.names:
            assert "PowerDeliveryReq" in replay.names
    assert whole, "no connection of the capture reached the charge loop"


# --- single requests from the public vectors --------------------------------------------------


def _nothing(h: Harness) -> None:
    pass


def _to_discovery(h: Harness) -> None:
    h.send(din.SessionSetupReqType(EVCCID=bytes(6)))


def _to_selection(h: Harness) -> None:
    _to_discovery(h)
    h.send(din.ServiceDiscoveryReqType())


_DRIVES: dict[type[Any], Callable[[Harness], None]] = {
    din.SessionSetupReqType: _nothing,
    din.ServiceDiscoveryReqType: _to_discovery,
    din.ServicePaymentSelectionReqType: _to_selection,
    din.ContractAuthenticationReqType: to_authentication,
    din.ChargeParameterDiscoveryReqType: to_charge_parameters,
    din.CableCheckReqType: to_cable_check,
    din.PreChargeReqType: to_pre_charge,
    din.PowerDeliveryReqType: to_pre_charge,
    din.CurrentDemandReqType: to_charging,
    din.SessionStopType: to_pre_charge,
}


def _vectors() -> Sequence[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("public_vectors.json", "public_vectors_extra.json"):
        path = CORPUS / name
        if not path.exists():
            continue
        document = json.loads(path.read_text())
        vectors = document if isinstance(document, list) else document.get("vectors", [])
        out.extend(
            v
            for v in vectors
            if v.get("codec_kind") == "din"
            and v["message"].endswith("Req")
            and str(v.get("device") or "").startswith("EV:")
        )
    return out


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: f"{v['id']}-{v['message']}")
def test_a_real_car_request_is_accepted(vector: dict[str, Any]) -> None:
    request = SPEC.request_of(exi.decode("din", bytes.fromhex(vector["hex"])))
    h = Harness()
    h.set_status(limits=LIMITS)
    h.handshake([sap.AppProtocol.DIN])
    _DRIVES[type(request)](h)
    if isinstance(request, din.PreChargeReqType | din.CurrentDemandReqType):
        target = convert.value(request.EVTargetVoltage)
        h.set_status(present_voltage=target, voltage_reached=True)
    if isinstance(request, din.CableCheckReqType):
        h.set_status(cp_state=ControlPilotState.C)
    response = h.send(request)
    assert str(response.ResponseCode).startswith("OK"), vector["id"]
