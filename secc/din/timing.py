"""DIN SPEC 70121 SECC timing (clause 9.6), in one table.

Values: V2G_SECC_Sequence_Timeout 60 s, started after each response ([V2G-DC-432]);
Table 77 (9.6.5, sequence timers): V2G_SECC_CPState_Detection_Timeout 1.5 s (the SECC waits
that long for CP state C/D after the first CableCheckReq, [V2G-DC-547]),
V2G_SECC_CableCheck_Performance_Time 38 s (the car gives up at V2G_EVCC_CableCheck_Timeout,
40 s), V2G_SECC_PreCharge_Performance_Time 5 s (the car's V2G_EVCC_PreCharge_Timeout is 7 s).
DIN names no SECC limit for Ongoing answers; ContractAuthentication uses the car's 60 s
([V2G-DC-863], [V2G-DC-864]), as the EV side of this project does.
"""

from __future__ import annotations

from typing import Final

from secc.protocol import Timing

__all__ = ["TIMING"]

TIMING: Final = Timing(
    sequence_timeout=60.0,
    cp_state_detection=1.5,
    ongoing_timeout=60.0,
    cable_check_timeout=38.0,
    pre_charge_timeout=5.0,
    requirements={
        "sequence_timeout": "V2G_SECC_Sequence_Timeout [V2G-DC-432]",
        "cp_state_detection": "V2G_SECC_CPState_Detection_Timeout, Table 77 [V2G-DC-547]",
        "ongoing_timeout": "V2G_EVCC_Ongoing_Timeout (the car's limit) [V2G-DC-863]",
        "cable_check_timeout": "V2G_SECC_CableCheck_Performance_Time, Table 77",
        "pre_charge_timeout": "V2G_SECC_PreCharge_Performance_Time, Table 77 (not enforced: "
        "the car ends pre-charge)",
    },
)
