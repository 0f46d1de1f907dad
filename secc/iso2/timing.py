"""ISO 15118-2:2014 SECC timing (clause 9.6, Tables 109 and 112), in one table."""

from __future__ import annotations

from typing import Final

from secc.protocol import Timing

__all__ = ["TIMING"]

TIMING: Final = Timing(
    sequence_timeout=60.0,
    cp_state_detection=1.5,
    ongoing_timeout=60.0,
    cable_check_timeout=38.0,
    pre_charge_timeout=7.0,
    requirements={
        "sequence_timeout": "V2G_SECC_Sequence_Timeout, Table 109 [V2G2-745]",
        "cp_state_detection": "V2G_SECC_CPState_Detection_Timeout, Table 109",
        "ongoing_timeout": "V2G_EVCC_Ongoing_Timeout, Table 109 (the car's limit)",
        "cable_check_timeout": "the SECC's own limit, below V2G_EVCC_CableCheck_Timeout "
        "(40 s, Table 109: the car's limit)",
        "pre_charge_timeout": "V2G_EVCC_PreCharge_Timeout, Table 109 (the car's limit)",
    },
)
