"""The ISO 15118-2 protocol as the generic session core sees it."""

from __future__ import annotations

from typing import Final

from exi_schemas import iso2
from iso15118.sap import AppProtocol
from secc.iso2.convert import status_fields
from secc.iso2.state import State
from secc.iso2.table import TRANSITIONS
from secc.iso2.timing import TIMING
from secc.protocol import ProtocolSpec

__all__ = ["SPEC"]

SPEC: Final = ProtocolSpec(
    protocol=AppProtocol.ISO2,
    module=iso2,
    initial_state=State.WAIT_SESSION_SETUP,
    transitions=TRANSITIONS,
    timing=TIMING,
    status_fields=status_fields,
    session_setup=iso2.SessionSetupReqType,
)
