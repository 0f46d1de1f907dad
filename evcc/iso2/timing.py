"""ISO 15118-2:2014 EV-side time limits (clause 8.7), one table.

Sources: Table 109 (V2G_EVCC_Msg_Timeout per message, V2G_EVCC_Ongoing_Timeout; message and
sequence timer handling in 8.7.2, [V2G2-436]..[V2G2-445]; Ongoing in 8.7.3.4/8.7.3.5,
[V2G2-710]..[V2G2-713]) and Table 111 (V2G_EVCC_CommunicationSetup_Timeout, 8.7.3.2/8.7.3.3,
[V2G2-446]..[V2G2-449], [V2G2-714]..[V2G2-716]; V2G_EVCC_CableCheck_Timeout and
V2G_EVCC_PreCharge_Timeout, 8.7.3.6/8.7.3.7, [V2G2-700]..[V2G2-707]).
V2G_EVCC_Sequence_Performance_Time (40 s) is a performance time, not a timeout, and the SECC
performance times are the charger's business: neither is enforced here.
"""

from __future__ import annotations

from evcc.timing import Timeout, TimingTable

__all__ = ["ISO2_TIMING"]

_T109 = "ISO 15118-2 Table 109, [V2G2-436]..[V2G2-445]"
_T111 = "ISO 15118-2 Table 111"


def _msg(request: str, seconds: float) -> tuple[str, Timeout]:
    return request, Timeout(f"V2G_EVCC_Msg_Timeout({request})", seconds, _T109)


ISO2_TIMING = TimingTable(
    message=dict(
        [
            _msg("supportedAppProtocolReq", 2.0),
            _msg("SessionSetupReq", 2.0),
            _msg("ServiceDiscoveryReq", 2.0),
            _msg("ServiceDetailReq", 5.0),
            _msg("PaymentServiceSelectionReq", 2.0),
            _msg("PaymentDetailsReq", 5.0),
            _msg("AuthorizationReq", 2.0),
            _msg("ChargeParameterDiscoveryReq", 2.0),
            _msg("ChargingStatusReq", 2.0),
            _msg("MeteringReceiptReq", 2.0),
            _msg("PowerDeliveryReq", 5.0),
            _msg("CableCheckReq", 2.0),
            _msg("PreChargeReq", 2.0),
            _msg("CurrentDemandReq", 0.25),
            _msg("WeldingDetectionReq", 2.0),
            _msg("SessionStopReq", 2.0),
            _msg("CertificateInstallationReq", 5.0),
            _msg("CertificateUpdateReq", 5.0),
        ]
    ),
    default_message=Timeout("V2G_EVCC_Msg_Timeout", 2.0, _T109),
    ongoing=Timeout(
        "V2G_EVCC_Ongoing_Timeout", 60.0, "ISO 15118-2 Table 109, [V2G2-710]..[V2G2-713]"
    ),
    communication_setup=Timeout(
        "V2G_EVCC_CommunicationSetup_Timeout", 20.0, f"{_T111}, [V2G2-714]..[V2G2-716]"
    ),
    phase={
        "CableCheckReq": Timeout(
            "V2G_EVCC_CableCheck_Timeout", 40.0, f"{_T111}, [V2G2-700]..[V2G2-703]"
        ),
        "PreChargeReq": Timeout(
            "V2G_EVCC_PreCharge_Timeout", 7.0, f"{_T111}, [V2G2-704]..[V2G2-707]"
        ),
    },
)
