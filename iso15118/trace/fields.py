"""What a technician reads first in a V2G message: one table of fields per message name.

`summarize(document)` takes a message in the codec's JSON shape (`iso15118.exi.to_json`) and
returns its name and the fields worth a glance, as (label, text) pairs:

    >>> summarize(document)
    MessageSummary(name='CurrentDemandReq', session_id='03cdfff67dd9deb3',
                   fields=(('EVTargetVoltage', '389.3 V'), ('EVTargetCurrent', '3 A'), ...))

The table `MESSAGE_FIELDS` lists, per message element name, the elements to show. DIN SPEC 70121,
ISO 15118-2 and ISO 15118-20 share many names (SessionSetupReq, PowerDeliveryReq, ...), so one
table serves all: an element a message does not have is skipped. Each element is looked up by
name, depth-first below the message element (the header excluded), so the table need not spell
out where DIN, -2 and -20 nest it. `LEADING` fields are shown for every message first, `TRAILING`
ones last; the status fields there are shown only when they are not in their normal state.

Values: a physical value (DIN/-2 `Multiplier`/`Unit`/`Value`, -20 `Exponent`/`Value`) is shown
with the multiplier applied and its unit (`12.5 A`); the table gives the unit where the message
carries none. Lists are joined with commas.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "LEADING",
    "MESSAGE_FIELDS",
    "TRAILING",
    "MessageSummary",
    "Shown",
    "format_value",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class Shown:
    """One field to show: the element `key`, found depth-first below the message element."""

    key: str
    label: str = ""  # shown name; `key` if empty
    unit: str = ""  # for values that carry no unit of their own
    hide: frozenset[str] = frozenset()  # formatted values that are not worth showing
    every: bool = False  # all occurrences, not just the first
    format: Callable[[Any], str] | None = None  # instead of `format_value`

    @property
    def name(self) -> str:
        return self.label or self.key


def _app_protocols(protocols: Any) -> str:
    """supportedAppProtocolReq entries, highest priority (1) first."""
    entries = protocols if isinstance(protocols, list) else [protocols]
    ordered = sorted(entries, key=lambda p: int(p.get("Priority", 0)))
    return ",".join(
        f"{p.get('ProtocolNamespace')}(v{p.get('VersionNumberMajor')}."
        f"{p.get('VersionNumberMinor')},SchemaID={p.get('SchemaID')},"
        f"Priority={p.get('Priority')})"
        for p in ordered
    )


def _hex_text(value: Any) -> str:
    """A hexBinary ID (DIN's EVSEID) with its text when that is printable ASCII."""
    shown = format_value(value)
    try:
        text = bytes.fromhex(shown).decode("ascii")
    except ValueError:  # not hex (an ISO-2 or -20 EVSEID is a string), or not ASCII
        return shown
    return f'{shown} ("{text}")' if len(text) >= 4 and text.isprintable() else shown


_FALSE: Final = frozenset({"false"})
V, A, W, WH = "V", "A", "W", "Wh"
SOC: Final = (Shown("EVRESSSOC", "SoC", "%"), Shown("PresentSOC", "SoC", "%"))

#: Shown first for every message that has them.
LEADING: Final = (Shown("ResponseCode"), Shown("EVSEProcessing"), Shown("EVProcessing"))
#: Shown last, and only when not in the normal state.
TRAILING: Final = (
    Shown("EVErrorCode", hide=frozenset({"NO_ERROR"})),
    Shown("EVSEStatusCode", hide=frozenset({"EVSE_Ready"})),
    Shown("EVSENotification", hide=frozenset({"None"})),
)

#: Per message element name (the body element for DIN/-2, the root for -20 and the handshake).
MESSAGE_FIELDS: Final[Mapping[str, tuple[Shown, ...]]] = {
    # SupportedAppProtocol
    "supportedAppProtocolReq": (Shown("AppProtocol", "offered", format=_app_protocols),),
    "supportedAppProtocolRes": (Shown("SchemaID"),),
    # DIN SPEC 70121, ISO 15118-2 and ISO 15118-20 common messages
    "SessionSetupReq": (Shown("EVCCID"),),
    "SessionSetupRes": (Shown("EVSEID", format=_hex_text),),
    "ServiceDiscoveryRes": (
        Shown("PaymentOption", "payment", every=True),
        Shown("EnergyTransferType", "transfer"),
        Shown("EnergyTransferMode", "transfer", every=True),
        Shown("ServiceID", "services", every=True),
    ),
    "ServiceDetailReq": (Shown("ServiceID", "service"),),
    "ServicePaymentSelectionReq": (Shown("SelectedPaymentOption", "payment"),),
    "PaymentServiceSelectionReq": (Shown("SelectedPaymentOption", "payment"),),
    "ServiceSelectionReq": (Shown("ServiceID", "service"), Shown("ParameterSetID")),
    "PaymentDetailsReq": (Shown("eMAID"),),
    "AuthorizationSetupRes": (Shown("AuthorizationServices", "services", every=True),),
    "AuthorizationReq": (Shown("SelectedAuthorizationService", "service"),),
    "ChargeParameterDiscoveryReq": (
        Shown("EVRequestedEnergyTransferType", "transfer"),
        Shown("RequestedEnergyTransferMode", "transfer"),
        Shown("EVMaximumVoltageLimit", unit=V),
        Shown("EVMaximumCurrentLimit", unit=A),
        Shown("EVMaximumPowerLimit", unit=W),
        Shown("EVMaxVoltage", unit=V),
        Shown("EVMaxCurrent", unit=A),
        Shown("EAmount", unit=WH),
        *SOC,
    ),
    "ChargeParameterDiscoveryRes": (
        Shown("EVSEMaximumVoltageLimit", unit=V),
        Shown("EVSEMaximumCurrentLimit", unit=A),
        Shown("EVSEMaximumPowerLimit", unit=W),
        Shown("EVSENominalVoltage", unit=V),
        Shown("EVSEMaxCurrent", unit=A),
    ),
    "CableCheckReq": SOC,
    "CableCheckRes": (Shown("EVSEIsolationStatus"),),
    "PreChargeReq": (Shown("EVTargetVoltage", unit=V), Shown("EVTargetCurrent", unit=A), *SOC),
    "PreChargeRes": (Shown("EVSEPresentVoltage", unit=V),),
    "PowerDeliveryReq": (
        Shown("ChargeProgress"),
        Shown("ReadyToChargeState"),
        Shown("ChargingComplete", hide=_FALSE),
    ),
    "CurrentDemandReq": (
        Shown("EVTargetVoltage", unit=V),
        Shown("EVTargetCurrent", unit=A),
        *SOC,
        Shown("ChargingComplete", hide=_FALSE),
    ),
    "CurrentDemandRes": (
        Shown("EVSEPresentVoltage", unit=V),
        Shown("EVSEPresentCurrent", unit=A),
        Shown("EVSECurrentLimitAchieved", hide=_FALSE),
        Shown("EVSEVoltageLimitAchieved", hide=_FALSE),
        Shown("EVSEPowerLimitAchieved", hide=_FALSE),
    ),
    "ChargingStatusRes": (Shown("EVSEMaxCurrent", unit=A), Shown("MeterReading", unit=WH)),
    "MeteringReceiptReq": (Shown("MeterReading", unit=WH),),
    "WeldingDetectionReq": SOC,
    "WeldingDetectionRes": (Shown("EVSEPresentVoltage", unit=V),),
    "SessionStopReq": (Shown("ChargingSession"),),
    # ISO 15118-20 DC and AC
    "DC_ChargeParameterDiscoveryReq": (
        Shown("EVMaximumChargePower", unit=W),
        Shown("EVMaximumChargeCurrent", unit=A),
        Shown("EVMaximumVoltage", unit=V),
    ),
    "DC_ChargeParameterDiscoveryRes": (
        Shown("EVSEMaximumChargePower", unit=W),
        Shown("EVSEMaximumChargeCurrent", unit=A),
        Shown("EVSEMaximumVoltage", unit=V),
    ),
    "DC_PreChargeReq": (Shown("EVPresentVoltage", unit=V), Shown("EVTargetVoltage", unit=V)),
    "DC_PreChargeRes": (Shown("EVSEPresentVoltage", unit=V),),
    "DC_ChargeLoopReq": (
        Shown("EVPresentVoltage", unit=V),
        Shown("EVTargetVoltage", unit=V),
        Shown("EVTargetCurrent", unit=A),
        Shown("EVTargetEnergyRequest", unit=WH),
        *SOC,
        Shown("ChargingComplete", hide=_FALSE),
    ),
    "DC_ChargeLoopRes": (
        Shown("EVSEPresentVoltage", unit=V),
        Shown("EVSEPresentCurrent", unit=A),
        Shown("EVSECurrentLimitAchieved", hide=_FALSE),
        Shown("EVSEVoltageLimitAchieved", hide=_FALSE),
        Shown("EVSEPowerLimitAchieved", hide=_FALSE),
    ),
    "DC_WeldingDetectionRes": (Shown("EVSEPresentVoltage", unit=V),),
    "AC_ChargeParameterDiscoveryReq": (Shown("EVMaximumChargePower", unit=W),),
    "AC_ChargeParameterDiscoveryRes": (Shown("EVSEMaximumChargePower", unit=W),),
    "AC_ChargeLoopReq": (
        Shown("EVPresentActivePower", unit=W),
        Shown("EVTargetEnergyRequest", unit=WH),
        *SOC,
        Shown("ChargingComplete", hide=_FALSE),
    ),
    "AC_ChargeLoopRes": (
        Shown("EVSETargetActivePower", unit=W),
        Shown("EVSEPresentActivePower", unit=W),
    ),
}


@dataclass(frozen=True, slots=True)
class MessageSummary:
    name: str  # the message element, e.g. CurrentDemandReq, supportedAppProtocolRes
    session_id: str | None  # from the message header (DIN, -2, -20); None for the handshake
    fields: tuple[tuple[str, str], ...]  # (label, text) in table order


def summarize(document: Mapping[str, Any]) -> MessageSummary:
    """Name, session ID and the `MESSAGE_FIELDS` of a message in the codec's JSON shape."""
    name, header, body = _message_parts(document)
    session_id = header.get("SessionID")
    shown = _shown(name)
    found = _collect(body, frozenset(spec.key for spec in shown))
    fields: list[tuple[str, str]] = []
    for spec in shown:
        values = found.get(spec.key)
        if not values:
            continue
        value = _flatten(values) if spec.every else values[0]
        text = spec.format(value) if spec.format else format_value(value, spec.unit)
        if text not in spec.hide:
            fields.append((spec.name, text))
    return MessageSummary(name, None if session_id is None else str(session_id), tuple(fields))


@functools.cache
def _shown(name: str) -> tuple[Shown, ...]:
    return (*LEADING, *MESSAGE_FIELDS.get(name, ()), *TRAILING)


def _message_parts(document: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], Any]:
    """(message name, header, message content) for DIN/-2 (`V2G_Message` with Header and Body),
    -20 (the message element holds its Header) and the handshake (no header)."""
    if len(document) != 1:
        raise ValueError("a message document has exactly one root element")
    ((root, content),) = document.items()
    content = content if isinstance(content, dict) else {}
    header = content.get("Header")
    header = header if isinstance(header, dict) else {}
    if root != "V2G_Message":
        return root, header, content
    body = content.get("Body")
    if not isinstance(body, dict) or not body:
        return root, header, {}
    name, inner = next(iter(body.items()))
    return name, header, inner


def _collect(body: Any, keys: frozenset[str]) -> dict[str, list[Any]]:
    """The values of each of `keys` in `body` (not inside a Header), depth-first in document
    order, in one walk."""
    found: dict[str, list[Any]] = {}
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        children = []
        for key, value in node.items():
            if key in keys:
                found.setdefault(key, []).append(value)
            if key != "Header" and isinstance(value, dict | list):
                children.append(value)
        stack.extend(reversed(children))
    return found


def _flatten(values: list[Any]) -> list[Any]:
    """Every occurrence, list values spliced in."""
    return [item for value in values for item in (value if isinstance(value, list) else [value])]


def format_value(value: Any, unit: str = "") -> str:
    """A JSON value for people: physical values with multiplier and unit applied."""
    if isinstance(value, list):
        return ",".join(format_value(item, unit) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        number = _physical(value)
        if number is None:
            return json.dumps(value, separators=(",", ":"))
        unit = str(value.get("Unit", unit))
        return f"{number} {unit}" if unit else number
    if isinstance(value, int) and unit:
        return f"{value} {unit}"
    return str(value)


def _physical(value: Mapping[str, Any]) -> str | None:
    """`Value` * 10^`Multiplier` (DIN, -2) or 10^`Exponent` (-20), without float noise."""
    exponent = value.get("Multiplier", value.get("Exponent"))
    number = value.get("Value")
    if not isinstance(exponent, int) or not isinstance(number, int):
        return None
    scaled = Decimal(number).scaleb(exponent).normalize()
    return f"{scaled:f}"
