"""DIN SPEC 70121:2014 EV-side time limits (clause 9.6), one table.

Sources: Table 75 (V2G_EVCC_Msg_Timeout per message, 9.6.2) and Table 77 (sequence timers,
9.6.5: CommunicationSetup, CableCheck, PreCharge). DIN does not spell out an EV-side
Ongoing timeout in the text we could consult; [V2G-DC-863], [V2G-DC-864] and [V2G-DC-1004]
tie repeated `Ongoing` answers to a timer, and we use ISO 15118-2's 60 s
(V2G_EVCC_Ongoing_Timeout, Table 109) for it. The SECC-side performance times (1.5 s per
message, 0.025 s for CurrentDemandRes, 38 s cable check, 5 s pre-charge) are not EV timers
and are not enforced here. V2G_EVCC_ReadyToCharge_Timeout (150 s, Table 77) is not
enforced either: the simulator reaches PowerDelivery long before it.
"""

from __future__ import annotations

from evcc.timing import Timeout, TimingTable

__all__ = ["DIN_TIMING"]

_T75 = "DIN SPEC 70121 9.6.2, Table 75"
_T77 = "DIN SPEC 70121 9.6.5, Table 77"


def _msg(request: str, seconds: float) -> tuple[str, Timeout]:
    return request, Timeout(f"V2G_EVCC_Msg_Timeout({request})", seconds, _T75)


DIN_TIMING = TimingTable(
    message=dict(
        [
            _msg("supportedAppProtocolReq", 2.0),
            _msg("SessionSetupReq", 2.0),
            _msg("ServiceDiscoveryReq", 2.0),
            _msg("ServicePaymentSelectionReq", 2.0),
            _msg("ContractAuthenticationReq", 2.0),
            _msg("ChargeParameterDiscoveryReq", 2.0),
            _msg("PowerDeliveryReq", 2.0),
            _msg("CableCheckReq", 2.0),
            _msg("PreChargeReq", 2.0),
            _msg("CurrentDemandReq", 0.25),
            _msg("WeldingDetectionReq", 2.0),
            _msg("SessionStopReq", 2.0),
        ]
    ),
    default_message=Timeout("V2G_EVCC_Msg_Timeout", 2.0, _T75),
    ongoing=Timeout(
        "V2G_EVCC_Ongoing_Timeout",
        60.0,
        "[V2G-DC-863], [V2G-DC-864], [V2G-DC-1004]; value of ISO 15118-2 Table 109",
    ),
    communication_setup=Timeout("V2G_EVCC_CommunicationSetup_Timeout", 20.0, _T77),
    phase={
        "CableCheckReq": Timeout("V2G_EVCC_CableCheck_Timeout", 40.0, _T77),
        "PreChargeReq": Timeout("V2G_EVCC_PreCharge_Timeout", 7.0, _T77),
    },
)
