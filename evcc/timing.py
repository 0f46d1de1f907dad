"""The shape of an EV-side timing table; the values live in `evcc.din.timing` and
`evcc.iso2.timing`, one table per standard, each value with the clause that sets it.

Kinds of timer the session core keeps (all deadlines, `now` is passed in):

* message timeout: from sending a request until its response must be complete
  (V2G_EVCC_Msg_Timeout, per request type);
* ongoing timeout: from the first response that says `Ongoing` for a request type until the
  SECC says `Finished` (V2G_EVCC_Ongoing_Timeout);
* phase timeouts: from the first request of a phase (CableCheck, PreCharge) until the EV
  leaves it (V2G_EVCC_CableCheck_Timeout, V2G_EVCC_PreCharge_Timeout);
* communication setup: from the start of the session (the supportedAppProtocolReq) until
  SessionSetupRes (V2G_EVCC_CommunicationSetup_Timeout).

Any of them expiring ends the session with `SessionFinished(ok=False, reason=...)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Timeout", "TimingTable"]


@dataclass(frozen=True, slots=True)
class Timeout:
    """A time limit in seconds and where the standard sets it."""

    name: str  # the standard's parameter name, e.g. "V2G_EVCC_Msg_Timeout(CurrentDemandReq)"
    seconds: float
    source: str  # table / requirement IDs


@dataclass(frozen=True, slots=True)
class TimingTable:
    """The EV-side time limits of one protocol."""

    #: per request element name (e.g. "CableCheckReq")
    message: Mapping[str, Timeout]
    #: used for a request the table does not list
    default_message: Timeout
    ongoing: Timeout
    communication_setup: Timeout
    #: phase timers keyed by the request that starts the phase
    phase: Mapping[str, Timeout]

    def message_timeout(self, request: str) -> Timeout:
        return self.message.get(request, self.default_message)
