"""The ISO 15118-2 SECC state diagram, generated from the transition table.

`TRANSITIONS` says which requests each state accepts and which handler answers them; where a
handler may lead is declared once in `NEXT_STATES` (a handler's successful outcomes: the
states it names, `STAY` for "no next_state", `END` for the end of the session). A request's
FAILED answer ends the session from every state; the diagram leaves those edges out.

`edges()` is the graph, `mermaid()` its Mermaid `stateDiagram-v2` text (`python -m
secc.iso2.diagram` prints it), `reachable()` the states reachable from the initial state.
Tests check that every state has a row, that every handler of the table has a declared
entry and is reachable, and that the sessions they run take only declared edges.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any, Final

from secc.context import Handler
from secc.iso2.state import State
from secc.iso2.states.certificates import (
    handle_certificate_installation,
    handle_certificate_update,
)
from secc.iso2.states.charge_parameters import handle_charge_parameter_discovery
from secc.iso2.states.charging import (
    handle_charging_status,
    handle_current_demand,
    handle_metering_receipt,
)
from secc.iso2.states.dc import handle_cable_check, handle_pre_charge, handle_welding_detection
from secc.iso2.states.discovery import (
    handle_payment_service_selection,
    handle_service_detail,
    handle_service_discovery,
)
from secc.iso2.states.payment import handle_authorization, handle_payment_details
from secc.iso2.states.power_delivery import handle_power_delivery
from secc.iso2.states.session_setup import handle_session_setup
from secc.iso2.states.session_stop import handle_session_stop
from secc.iso2.table import TRANSITIONS

__all__ = ["END", "NEXT_STATES", "STAY", "Target", "edges", "mermaid", "reachable"]


class Target(Enum):
    """Where an outcome leads besides a `State`."""

    STAY = "stay"  # Outcome.next_state is None: the state is kept (Ongoing, repetitions)
    END = "end"  # the session ends (SessionStop: terminate or pause)


STAY: Final = Target.STAY
END: Final = Target.END

#: The successful outcomes of each handler (what its `next_state` may be).
NEXT_STATES: Final[Mapping[Handler, frozenset[State | Target]]] = {
    handle_session_setup: frozenset({State.WAIT_SERVICE_DISCOVERY}),
    handle_service_discovery: frozenset({State.WAIT_PAYMENT_SERVICE_SELECTION}),
    handle_service_detail: frozenset({STAY}),
    handle_payment_service_selection: frozenset(
        {State.WAIT_PAYMENT_DETAILS, State.WAIT_AUTHORIZATION}
    ),
    handle_certificate_installation: frozenset({STAY}),
    handle_certificate_update: frozenset({STAY}),
    handle_payment_details: frozenset({State.WAIT_AUTHORIZATION}),
    handle_authorization: frozenset({STAY, State.WAIT_CHARGE_PARAMETER_DISCOVERY}),
    handle_charge_parameter_discovery: frozenset(
        {State.WAIT_CABLE_CHECK, State.WAIT_POWER_DELIVERY}
    ),
    handle_cable_check: frozenset({STAY, State.WAIT_PRE_CHARGE}),
    handle_pre_charge: frozenset({STAY}),
    handle_power_delivery: frozenset(
        {State.CHARGING, State.WAIT_CHARGE_PARAMETER_DISCOVERY, State.WAIT_SESSION_STOP}
    ),
    handle_charging_status: frozenset({STAY}),
    handle_current_demand: frozenset({STAY}),
    handle_metering_receipt: frozenset({STAY}),
    handle_welding_detection: frozenset({STAY}),
    handle_session_stop: frozenset({END}),
}

INITIAL: Final = State.WAIT_SESSION_SETUP


def _request_name(request_type: type[Any]) -> str:
    return request_type.__name__.removesuffix("Type")


def edges() -> Iterator[tuple[State, str, State | Target]]:
    """(state, request name, target) for every row of the table and declared outcome;
    STAY targets come out as the state itself."""
    for state, row in TRANSITIONS.items():
        for request_type, handler in row.items():
            for target in sorted(NEXT_STATES[handler], key=lambda t: t.name):
                yield state, _request_name(request_type), state if target is STAY else target


def reachable() -> set[State]:
    """The states reachable from the initial state through declared edges."""
    seen = {INITIAL}
    todo = [INITIAL]
    while todo:
        state = todo.pop()
        for source, _name, target in edges():
            if source is state and isinstance(target, State) and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def mermaid() -> str:
    """The state diagram as Mermaid text (one edge per state, target and request names)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for state, name, target in edges():
        end = "[*]" if target is END else target.name
        grouped.setdefault((state.name, end), []).append(name)
    lines = ["stateDiagram-v2", f"    [*] --> {INITIAL.name}"]
    for state in State:
        lines.append(f"    {state.name}: {state.value}")
    for (source, goal), names in grouped.items():
        lines.append(f"    {source} --> {goal}: {', '.join(names)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m secc.iso2.diagram > iso2-secc.mmd
    import sys

    sys.stdout.write(mermaid())
