"""The ISO 15118-2 transition table: illegal requests, FAILED forms, the SessionID check, and
the state diagram generated from the table."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from secc_helpers import Harness
from test_secc_iso2_support import (
    AC,
    ac_charging,
    ac_cpd,
    authorized_eim,
    cable_check,
    ctx,
    current_demand,
    data,
    dc_charging,
    dc_cpd,
    of_type,
    pnc_harness,
    pnc_to_payment_details,
    power_delivery,
    pre_charge,
    selection,
    session_stop,
    setup,
)

from exi_schemas import iso2
from iso15118 import exi
from iso15118.sap import AppProtocol
from secc import errors
from secc.context import PaymentOption
from secc.events import ConnectionClosing, SessionEnded
from secc.evse import ControlPilotState, EnergyMode, IsolationStatus
from secc.iso2 import diagram
from secc.iso2.spec import SPEC
from secc.iso2.state import State
from secc.iso2.table import TRANSITIONS
from secc.minimal import minimal
from secc.records import StopReason

R = iso2.responseCodeType
REQUESTS: list[type[Any]] = [
    f.kind for f in iso2.BodyType._exi_fields_ if f.py.endswith("Req") and isinstance(f.kind, type)
]


def request_of(request_type: type[Any]) -> Any:
    """A schema-valid instance (`minimal` leaves a required xs:choice empty)."""
    if request_type is iso2.ChargeParameterDiscoveryReqType:
        return ac_cpd()
    return minimal(request_type)


# --- drive a session into each state ----------------------------------------------------------


def _handshake(h: Harness) -> None:
    h.handshake([AppProtocol.ISO2])


def _service_discovery(h: Harness) -> None:
    setup(h)


def _payment_selection(h: Harness) -> None:
    setup(h)
    h.send(iso2.ServiceDiscoveryReqType())


def _authorization(h: Harness) -> None:
    _payment_selection(h)
    h.send(selection())


def _cable_check(h: Harness) -> None:
    authorized_eim(h)
    h.send(dc_cpd())


def _pre_charge(h: Harness) -> None:
    _cable_check(h)
    h.set_status(cp_state=ControlPilotState.C, isolation=IsolationStatus.VALID)
    h.send(cable_check())
    h.send(cable_check())


def _power_delivery(h: Harness) -> None:
    authorized_eim(h)
    h.send(ac_cpd())


def _session_stop(h: Harness) -> None:
    ac_charging(h)
    h.send(power_delivery(iso2.chargeProgressType.Stop))


DRIVERS: dict[State, Callable[[Harness], None]] = {
    State.WAIT_SESSION_SETUP: _handshake,
    State.WAIT_SERVICE_DISCOVERY: _service_discovery,
    State.WAIT_PAYMENT_SERVICE_SELECTION: _payment_selection,
    State.WAIT_PAYMENT_DETAILS: pnc_to_payment_details,
    State.WAIT_AUTHORIZATION: _authorization,
    State.WAIT_CHARGE_PARAMETER_DISCOVERY: authorized_eim,
    State.WAIT_CABLE_CHECK: _cable_check,
    State.WAIT_PRE_CHARGE: _pre_charge,
    State.WAIT_POWER_DELIVERY: _power_delivery,
    State.CHARGING: ac_charging,
    State.WAIT_SESSION_STOP: _session_stop,
}


def harness_in(state: State) -> Harness:
    h = pnc_harness() if state is State.WAIT_PAYMENT_DETAILS else Harness()
    DRIVERS[state](h)
    assert h.session.state is state and not h.session.closed
    h.drain()
    h.events.clear()
    return h


def test_every_state_has_a_driver() -> None:
    assert set(DRIVERS) == set(State)


ILLEGAL = [
    pytest.param(state, request, id=f"{state.name}-{request.__name__}")
    for state in State
    for request in REQUESTS
    if request not in TRANSITIONS[state]
]


@pytest.mark.parametrize(("state", "request_type"), ILLEGAL)
def test_a_request_the_state_does_not_take_is_a_sequence_error(
    state: State, request_type: type[Any]
) -> None:
    h = harness_in(state)
    started = h.session.data is not None
    response = h.send(request_of(request_type))
    assert type(response) is SPEC.response_type(request_type)
    assert response.ResponseCode == R.FAILED_SequenceError
    assert h.session.closed and h.session.get_timer() is None
    (closing,) = of_type(h.events, ConnectionClosing)
    assert closing.reason is StopReason.PROTOCOL_ERROR
    ended = of_type(h.events, SessionEnded)
    assert len(ended) == (1 if started else 0)
    if ended:
        assert ended[0].record.stop_reason is StopReason.PROTOCOL_ERROR


def test_the_illegal_pairs_are_most_pairs() -> None:
    legal = sum(len(row) for row in TRANSITIONS.values())
    assert len(ILLEGAL) + legal == len(State) * len(REQUESTS)
    assert len(REQUESTS) == 17


LEGAL_AFTER_SETUP = [
    pytest.param(state, request, id=f"{state.name}-{request.__name__}")
    for state, row in TRANSITIONS.items()
    for request in row
    if request is not iso2.SessionSetupReqType
]


@pytest.mark.parametrize(("state", "request_type"), LEGAL_AFTER_SETUP)
def test_a_wrong_session_id_is_an_unknown_session(state: State, request_type: type[Any]) -> None:
    h = harness_in(state)
    response = h.send(request_of(request_type), session_id=b"\xee" * 8)
    assert response.ResponseCode == R.FAILED_UnknownSession
    assert h.session.closed
    assert len(of_type(h.events, SessionEnded)) == 1


def test_session_setup_may_carry_any_session_id() -> None:
    h = Harness()
    h.handshake([AppProtocol.ISO2])
    response = h.send(iso2.SessionSetupReqType(EVCCID=b"\x01" * 6), session_id=b"\xee" * 8)
    assert response.ResponseCode == R.OK_NewSessionEstablished


# --- FAILED responses -------------------------------------------------------------------------


@pytest.mark.parametrize("modes", [AC, (EnergyMode.DC_EXTENDED,)], ids=["AC", "DC"])
@pytest.mark.parametrize("request_type", REQUESTS, ids=lambda t: t.__name__)
def test_every_failed_response_encodes(request_type: type[Any], modes: Any) -> None:
    response = SPEC.failed_response(request_type, "FAILED_SequenceError", ctx(modes=modes), data())
    message = SPEC.wrap(b"\x01" * 8, response)
    decoded = exi.decode("iso2", exi.encode("iso2", message))
    assert decoded == message
    body = SPEC.request_of(decoded)
    assert body is not None and body.ResponseCode == R.FAILED_SequenceError


def _error_classes(base: type[errors.V2GError]) -> list[type[errors.V2GError]]:
    """`base` and its subclasses defined in secc.errors (DIN has codes of its own)."""
    out = [base] if base.__module__ == errors.__name__ else []
    for sub in base.__subclasses__():
        out.extend(_error_classes(sub))
    return out


@pytest.mark.parametrize("error", _error_classes(errors.V2GError), ids=lambda e: e.__name__)
def test_every_error_code_is_an_iso2_response_code(error: type[errors.V2GError]) -> None:
    assert R(error.response_code).value == error.response_code


def test_an_unknown_code_falls_back_to_failed() -> None:
    assert SPEC.response_code("FAILED_NoSuchCode") is R.FAILED


# --- the diagram ------------------------------------------------------------------------------


def test_every_state_has_a_row_and_is_reachable() -> None:
    assert set(TRANSITIONS) == set(State)
    assert diagram.reachable() == set(State)


def test_every_handler_has_declared_outcomes() -> None:
    handlers = {h for row in TRANSITIONS.values() for h in row.values()}
    assert handlers == set(diagram.NEXT_STATES)


def test_every_handler_is_reachable() -> None:
    reachable = diagram.reachable()
    for state, row in TRANSITIONS.items():
        assert state in reachable, f"{state.name} is unreachable, so are {list(row)}"


def _states_named_in(module_name: str) -> set[State]:
    """`State.X` attributes that a handler module's source mentions."""
    import importlib

    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    return {
        State[node.attr]
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "State"
    }


def test_declared_outcomes_match_the_states_each_module_names() -> None:
    by_module: dict[str, set[State]] = {}
    for handler, targets in diagram.NEXT_STATES.items():
        states = {t for t in targets if isinstance(t, State)}
        by_module.setdefault(handler.__module__, set()).update(states)
    for module_name, declared in by_module.items():
        assert _states_named_in(module_name) == declared, module_name


def test_mermaid() -> None:
    text = diagram.mermaid()
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "    [*] --> WAIT_SESSION_SETUP" in lines
    assert "    WAIT_SESSION_SETUP --> WAIT_SERVICE_DISCOVERY: SessionSetupReq" in lines
    assert "    WAIT_POWER_DELIVERY --> [*]: SessionStopReq" in lines
    charge_loop = "ChargingStatusReq, CurrentDemandReq, MeteringReceiptReq, PowerDeliveryReq"
    assert f"    CHARGING --> CHARGING: {charge_loop}" in lines
    assert "    WAIT_PRE_CHARGE --> CHARGING: PowerDeliveryReq" in lines
    for state in State:
        assert f"    {state.name}: {state.value}" in lines
    edge_count = sum(1 for line in lines if "-->" in line)
    assert edge_count == len({(s, t) for s, _n, t in diagram.edges()}) + 1


# --- sessions take declared edges only --------------------------------------------------------


class Recording(Harness):
    """A Harness that records (state before, request, state after) of every exchange."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.taken: set[tuple[State, str, State | diagram.Target]] = set()

    def send(self, body: Any, **options: Any) -> Any:
        before = self.session.state
        response = super().send(body, **options)
        if isinstance(before, State) and response is not None:
            ok = not str(response.ResponseCode).startswith("FAILED")
            after = self.session.state
            target = diagram.END if self.session.closed else after
            if ok and isinstance(target, State | diagram.Target):
                self.taken.add((before, SPEC.name_of(body), target))
        return response


def _ac_renegotiation(h: Harness) -> None:
    ac_charging(h)
    h.send(iso2.ChargingStatusReqType())
    h.send(power_delivery(iso2.chargeProgressType.Renegotiate))
    h.send(ac_cpd())
    h.send(power_delivery())
    h.send(power_delivery(iso2.chargeProgressType.Stop))
    h.send(session_stop())


def _dc_full(h: Harness) -> None:
    dc_charging(h)
    h.send(pre_charge())
    h.send(current_demand())
    h.send(power_delivery(iso2.chargeProgressType.Stop))
    h.send(iso2.WeldingDetectionReqType(DC_EVStatus=cable_check().DC_EVStatus))
    h.send(session_stop(pause=True))


def _service_detail(h: Harness) -> None:
    setup(h)
    h.send(iso2.ServiceDiscoveryReqType())
    h.send(iso2.ServiceDetailReqType(ServiceID=2))
    h.send(selection(PaymentOption.CONTRACT))


@pytest.mark.parametrize("drive", [_ac_renegotiation, _dc_full, _service_detail])
def test_sessions_take_declared_edges_only(drive: Callable[[Harness], None]) -> None:
    tls = drive is _service_detail
    h = Recording(tls=tls)
    drive(h)
    declared = set(diagram.edges())
    assert h.taken, "nothing recorded"
    assert h.taken <= declared, h.taken - declared


def test_the_diagram_prints_from_the_command_line() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "secc.iso2.diagram"], capture_output=True, text=True, check=True
    )
    assert out.stdout == diagram.mermaid()
