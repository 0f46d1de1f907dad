"""The DIN SPEC 70121 protocol as the generic session core sees it."""

from __future__ import annotations

from typing import Final

from exi_schemas import din
from iso15118.sap import AppProtocol
from secc.din.convert import status_fields
from secc.din.state import State
from secc.din.table import TRANSITIONS
from secc.din.timing import TIMING
from secc.protocol import ProtocolSpec

__all__ = ["SPEC"]

SPEC: Final = ProtocolSpec(
    protocol=AppProtocol.DIN,
    module=din,
    initial_state=State.WAIT_SESSION_SETUP,
    transitions=TRANSITIONS,
    timing=TIMING,
    status_fields=status_fields,
    session_setup=din.SessionSetupReqType,
)
