"""Conformance cases the EV simulator cannot express, driven into the SECC core directly
with typed (or raw) messages on a fake clock (`secc_helpers.Harness`):

* CMN: the SupportedAppProtocol handshake (priorities, minor-version deviation, no common
  protocol, vendor namespaces, malformed input, the handshake timeout);
* ISO-2: the sequence timeout right after the handshake, and CertificateUpdate (the EV
  simulator does not build CertificateUpdateReq; the backend's answer is fed in by hand).

Numbering as in `test_conformance_iso2_families`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kit import SEQUENCE_TIMEOUT, Case, Env, Source, params, unique
from secc_helpers import Harness

from exi_schemas import apphand, iso2
from iso15118 import exi, sap
from iso15118.v2gtp import PayloadType, V2GTPMessage, V2GTPReassembler
from secc.context import SeccConfig
from secc.events import CertificateResult, ConnectionClosing, RequestCertificate, SessionEnded
from secc.minimal import minimal
from secc.records import StopReason

ATS, PATTERN, OWN = Source.ATS, Source.PATTERN, Source.OWN
ISO2_NS = sap.AppProtocol.ISO2.namespace
DIN_NS = sap.AppProtocol.DIN.namespace
R = iso2.responseCodeType
A = apphand.responseCodeType


# --- raw access ----------------------------------------------------------------------------


def feed(h: Harness, payload: bytes) -> bytes:
    """Send one V2GTP-framed payload; return the payload answered (b"" for none)."""
    h.session.receive_data(V2GTPMessage(PayloadType.SAP, payload).pack(), h.now)
    h.drain()
    return answered(h)


def answered(h: Harness) -> bytes:
    data = h.session.data_to_send()
    if not data:
        return b""
    (message,) = V2GTPReassembler().feed(data)
    return message.payload


def entry(
    namespace: str, priority: int, schema_id: int, major: int = 2, minor: int = 0
) -> apphand.AppProtocolType:
    return apphand.AppProtocolType(
        ProtocolNamespace=namespace,
        VersionNumberMajor=major,
        VersionNumberMinor=minor,
        SchemaID=schema_id,
        Priority=priority,
    )


def handshake(
    entries: list[apphand.AppProtocolType], *, config: SeccConfig | None = None, tls: bool = False
) -> tuple[Harness, apphand.supportedAppProtocolRes]:
    h = Harness(config=config, tls=tls)
    request = apphand.supportedAppProtocolReq(AppProtocol=entries)
    response = exi.decode("appHand", feed(h, exi.encode("appHand", request)))
    assert isinstance(response, apphand.supportedAppProtocolRes)
    return h, response


def closing(h: Harness) -> ConnectionClosing | None:
    found = [e for e in h.events if isinstance(e, ConnectionClosing)]
    return found[0] if found else None


# --- the handshake ---------------------------------------------------------------------------


def _negotiated(
    entries: list[apphand.AppProtocolType],
    code: Any,
    schema_id: int,
    *,
    config: SeccConfig | None = None,
    tls: bool = False,
) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        h, response = handshake(entries, config=config, tls=tls)
        assert (response.ResponseCode, response.SchemaID) == (code, schema_id), response
        assert not h.session.closed
        assert h.session.get_timer() == SEQUENCE_TIMEOUT  # now waiting for SessionSetupReq

    return check


def _no_negotiation(
    entries: list[apphand.AppProtocolType], *, config: SeccConfig | None = None
) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        h, response = handshake(entries, config=config)
        assert response.ResponseCode == A.Failed_NoNegotiation
        assert response.SchemaID is None
        found = closing(h)
        assert found is not None and found.reason is StopReason.PROTOCOL_ERROR
        assert not [e for e in h.events if isinstance(e, SessionEnded)]

    return check


def _unreadable(payload: Callable[[], bytes]) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        h = Harness()
        assert feed(h, payload()) == b""
        found = closing(h)
        assert found is not None and found.reason is StopReason.PROTOCOL_ERROR
        assert h.session.closed

    return check


def _session_setup_bytes() -> bytes:
    message = iso2.V2G_Message(
        Header=iso2.MessageHeaderType(SessionID=b"\x00"),
        Body=iso2.BodyType(SessionSetupReq=iso2.SessionSetupReqType(EVCCID=bytes(6))),
    )
    return exi.encode("iso2", message)


def _handshake_timeout(env: Env) -> None:
    """No supportedAppProtocolReq after the connection: closed at exactly 60 s."""
    h = Harness()
    assert h.session.get_timer() == SEQUENCE_TIMEOUT
    h.session.handle_timer(SEQUENCE_TIMEOUT - 0.001)
    assert not h.session.closed
    h.session.handle_timer(SEQUENCE_TIMEOUT)
    h.drain()
    found = closing(h)
    assert found is not None and found.reason is StopReason.TIMEOUT


def _session_setup_timeout(env: Env) -> None:
    """A handshake, then silence: the SECC closes exactly 60 s after its response."""
    h = Harness(now=5.0)
    h.handshake([sap.AppProtocol.ISO2])
    assert h.session.get_timer() == 5.0 + SEQUENCE_TIMEOUT
    h.session.handle_timer(5.0 + SEQUENCE_TIMEOUT - 0.001)
    assert not h.session.closed
    h.session.handle_timer(5.0 + SEQUENCE_TIMEOUT)
    h.drain()
    found = closing(h)
    assert found is not None and found.reason is StopReason.TIMEOUT
    assert not [e for e in h.events if isinstance(e, SessionEnded)]  # no session yet


# --- CertificateUpdate ---------------------------------------------------------------------------


def _contract_session() -> Harness:
    """An ISO-2 session over TLS up to PaymentServiceSelection(Contract, certificate update)."""
    h = Harness(tls=True)
    h.handshake([sap.AppProtocol.ISO2])
    assert (
        h.send(iso2.SessionSetupReqType(EVCCID=bytes(6))).ResponseCode == R.OK_NewSessionEstablished
    )
    assert h.send(iso2.ServiceDiscoveryReqType()).ResponseCode == R.OK
    selection = iso2.PaymentServiceSelectionReqType(
        SelectedPaymentOption=iso2.paymentOptionType.Contract,
        SelectedServiceList=iso2.SelectedServiceListType(
            SelectedService=[
                iso2.SelectedServiceType(ServiceID=1),
                iso2.SelectedServiceType(ServiceID=2, ParameterSetID=2),
            ]
        ),
    )
    assert h.send(selection).ResponseCode == R.OK
    return h


def update_request() -> Any:
    return minimal(iso2.CertificateUpdateReqType, Id="ID1", eMAID="DEABCC123456789")


def _decoded(h: Harness) -> Any:
    payload = answered(h)
    assert payload, "no answer"
    return iso2_body(exi.decode("iso2", payload))


def iso2_body(message: Any) -> Any:
    from secc.iso2.spec import SPEC

    return SPEC.request_of(message)


def _update(
    result: CertificateResult | None, code: Any, *, wait: float = 0.0
) -> Callable[[Env], None]:
    """CertificateUpdateReq goes to the backend; its answer (or none within the SECC's
    backend timeout) is relayed with `code`."""

    def check(env: Env) -> None:
        h = _contract_session()
        assert h.send(update_request()) is None  # held back for the backend
        (command,) = [e for e in h.events if isinstance(e, RequestCertificate)]
        assert command.kind == "update"
        if result is not None:
            h.session.handle_event(result, h.now)
        else:
            h.advance(wait)
            assert h.session.get_timer() == h.now
            h.session.handle_timer(h.now)
        h.drain()
        response = _decoded(h)
        assert isinstance(response, iso2.CertificateUpdateResType)
        assert response.ResponseCode == code
        assert h.session.closed == (code != R.OK)

    return check


def _update_sequence_error(env: Env) -> None:
    h = _contract_session()
    response = h.send(iso2.ServiceDiscoveryReqType())
    assert isinstance(response, iso2.ServiceDiscoveryResType)
    assert response.ResponseCode == R.FAILED_SequenceError
    assert h.session.closed


def _update_unknown_session(env: Env) -> None:
    h = _contract_session()
    response = h.send(update_request(), session_id=bytes.fromhex("DEADBEEFDEADBEEF"))
    assert isinstance(response, iso2.CertificateUpdateResType)
    assert response.ResponseCode == R.FAILED_UnknownSession
    assert h.session.closed


def _update_timeout(env: Env) -> None:
    h = _contract_session()
    deadline = h.now + SEQUENCE_TIMEOUT
    assert h.session.get_timer() == deadline
    h.session.handle_timer(deadline)
    h.drain()
    found = closing(h)
    assert found is not None and found.reason is StopReason.TIMEOUT
    (ended,) = [e for e in h.events if isinstance(e, SessionEnded)]
    assert ended.record.stop_reason is StopReason.TIMEOUT


def _c(
    number: str, title: str, source: Source, check: Callable[[Env], None], *, protocol: str = "iso2"
) -> Case:
    return Case(number, title, source, check, protocol=protocol)


S = "TC_SECC_CMN_VTB_SupportedAppProtocol_"
OK, OK_MINOR = A.OK_SuccessfulNegotiation, A.OK_SuccessfulNegotiationWithMinorDeviation
DIN_ONLY = SeccConfig(protocols=(sap.AppProtocol.DIN,))
ISO2_ONLY = SeccConfig(protocols=(sap.AppProtocol.ISO2,))

CASES: list[Case] = list(
    unique(
        [
            _c(
                S + "001",
                "ISO-2 offered (TLS): OK_SuccessfulNegotiation",
                ATS,
                _negotiated([entry(ISO2_NS, 1, 1)], OK, 1, tls=True),
                protocol="cmn",
            ),
            _c(
                S + "002",
                "unknown namespace only: Failed_NoNegotiation, closed",
                ATS,
                _no_negotiation([entry("urn:iso:15118:2:2010:MsgDef", 1, 1)]),
                protocol="cmn",
            ),
            _c(
                S + "003",
                "no supportedAppProtocolReq: closed after 60 s",
                ATS,
                _handshake_timeout,
                protocol="cmn",
            ),
            _c(
                S + "004",
                "ISO-2 offered (plain TCP, EIM): OK_SuccessfulNegotiation",
                ATS,
                _negotiated([entry(ISO2_NS, 1, 1)], OK, 1),
                protocol="cmn",
            ),
            _c(
                S + "006",
                "minor version 1 offered, 0 supported: OK_SuccessfulNegotiationWithMinorDeviation",
                ATS,
                _negotiated([entry(ISO2_NS, 1, 7, minor=1)], OK_MINOR, 7),
                protocol="cmn",
            ),
            _c(
                S + "101",
                "EV prefers DIN (priority 1) over ISO-2: DIN chosen",
                OWN,
                _negotiated([entry(DIN_NS, 1, 10), entry(ISO2_NS, 2, 20)], OK, 10),
                protocol="cmn",
            ),
            _c(
                S + "102",
                "EV prefers ISO-2 (priority 1) over DIN: ISO-2 chosen",
                OWN,
                _negotiated([entry(ISO2_NS, 1, 20), entry(DIN_NS, 2, 10)], OK, 20),
                protocol="cmn",
            ),
            _c(
                S + "103",
                "Priority decides, not the order of the entries",
                OWN,
                _negotiated([entry(ISO2_NS, 2, 20), entry(DIN_NS, 1, 10)], OK, 10),
                protocol="cmn",
            ),
            _c(
                S + "104",
                "vendor namespace at priority 1 is ignored: ISO-2 chosen",
                OWN,
                _negotiated(
                    [entry("urn:vendor:acme:charging:2020", 1, 5), entry(ISO2_NS, 2, 6)], OK, 6
                ),
                protocol="cmn",
            ),
            _c(
                S + "105",
                "the EV's first choice is not configured: the next supported one",
                OWN,
                _negotiated(
                    [entry(DIN_NS, 1, 10), entry(ISO2_NS, 2, 20)], OK, 20, config=ISO2_ONLY
                ),
                protocol="cmn",
            ),
            _c(
                S + "106",
                "no common protocol (SECC DIN only, EV ISO-2 only): Failed_NoNegotiation",
                OWN,
                _no_negotiation([entry(ISO2_NS, 1, 1)], config=DIN_ONLY),
                protocol="cmn",
            ),
            _c(
                S + "107",
                "other major version: Failed_NoNegotiation",
                OWN,
                _no_negotiation([entry(ISO2_NS, 1, 1, major=3)]),
                protocol="cmn",
            ),
            _c(
                S + "108",
                "undecodable bytes instead of the handshake: closed, no answer",
                OWN,
                _unreadable(lambda: bytes(range(1, 17))),
                protocol="cmn",
            ),
            _c(
                S + "109",
                "a V2G message instead of the handshake: closed, no answer",
                OWN,
                _unreadable(_session_setup_bytes),
                protocol="cmn",
            ),
            _c(
                "TC_SECC_CMN_VTB_SessionSetup_003",
                "silence after the handshake: closed 60 s after supportedAppProtocolRes",
                ATS,
                _session_setup_timeout,
            ),
            _c(
                "TC_SECC_CMN_VTB_CertificateUpdate_001",
                "good case: the backend's CertificateUpdateRes relayed, OK",
                PATTERN,
                _update(
                    CertificateResult(
                        body=minimal(iso2.CertificateUpdateResType, ResponseCode=R.OK)
                    ),
                    R.OK,
                ),
            ),
            _c(
                "TC_SECC_CMN_VTB_CertificateUpdate_002",
                "ServiceDiscoveryReq instead of CertificateUpdateReq: FAILED_SequenceError, closed",
                PATTERN,
                _update_sequence_error,
            ),
            _c(
                "TC_SECC_CMN_VTB_CertificateUpdate_003",
                "unknown SessionID: FAILED_UnknownSession, closed",
                PATTERN,
                _update_unknown_session,
            ),
            _c(
                "TC_SECC_CMN_VTB_CertificateUpdate_004",
                "silence where CertificateUpdateReq is due: closed after 60 s",
                PATTERN,
                _update_timeout,
            ),
            _c(
                "TC_SECC_CMN_VTB_CertificateUpdate_101",
                "the backend refuses: FAILED_NoCertificateAvailable, closed",
                OWN,
                _update(
                    CertificateResult(error_code="FAILED_NoCertificateAvailable"),
                    R.FAILED_NoCertificateAvailable,
                ),
            ),
            _c(
                "TC_SECC_CMN_VTB_CertificateUpdate_102",
                "no backend answer within 4.5 s: FAILED, closed",
                OWN,
                _update(None, R.FAILED, wait=4.5),
            ),
        ]
    )
)


@pytest.mark.parametrize("case", params(CASES))
def test_direct(case: Case, env: Env) -> None:
    case.run(env)
