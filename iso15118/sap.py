"""SupportedAppProtocol negotiation (ISO 15118-2 clause 8.4.3.2 / DIN SPEC 70121 9.4.1), sans-IO.

The first message on a V2G connection is the EV's `supportedAppProtocolReq`: up to 20
`AppProtocol` entries (namespace, version, SchemaID, priority 1 = most wanted). The SECC picks
the entry with the best priority among the protocols it is configured for, ignoring namespaces
it does not know (cars offer vendor ones, e.g. `urn:tesla:din:2018:MsgDef`), and answers with
that entry's SchemaID:

* same major and minor version → `OK_SuccessfulNegotiation` [V2G2-172];
* same major, other minor → `OK_SuccessfulNegotiationWithMinorDeviation` [V2G2-173];
* nothing usable → `Failed_NoNegotiation` without SchemaID, and the SECC closes [V2G2-174].

Both roles use this module: the SECC calls `negotiate`, the EV `offer` and `accepted`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from exi_schemas import apphand

__all__ = [
    "AppProtocol",
    "Negotiated",
    "accepted",
    "negotiate",
    "offer",
]


@dataclass(frozen=True, slots=True)
class _Protocol:
    namespace: str
    major: int
    minor: int
    schema: str  # the EXI grammar of the session's messages (iso15118.exi schema name)
    title: str


class AppProtocol(Enum):
    """The application protocols this stack speaks, as the handshake names them."""

    DIN = _Protocol("urn:din:70121:2012:MsgDef", 2, 0, "din", "DIN SPEC 70121")
    ISO2 = _Protocol("urn:iso:15118:2:2013:MsgDef", 2, 0, "iso2", "ISO 15118-2")

    @property
    def namespace(self) -> str:
        return self.value.namespace

    @property
    def schema(self) -> str:
        return self.value.schema

    @property
    def title(self) -> str:
        return self.value.title

    @classmethod
    def from_name(cls, name: str) -> AppProtocol:
        """`din`, `iso2` (configuration spelling) or the member name."""
        for protocol in cls:
            if name.lower() in (protocol.name.lower(), protocol.schema.lower()):
                return protocol
        raise ValueError(f"unknown application protocol {name!r} (known: din, iso2)")


_BY_NAMESPACE = {p.namespace: p for p in AppProtocol}
_OK = apphand.responseCodeType.OK_SuccessfulNegotiation
_OK_MINOR = apphand.responseCodeType.OK_SuccessfulNegotiationWithMinorDeviation
_FAILED = apphand.responseCodeType.Failed_NoNegotiation


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The SECC's answer and, if one was chosen, the protocol and the EV's entry for it."""

    response: apphand.supportedAppProtocolRes
    protocol: AppProtocol | None
    entry: apphand.AppProtocolType | None


def negotiate(
    request: apphand.supportedAppProtocolReq, supported: Sequence[AppProtocol]
) -> Negotiated:
    """Choose by the EV's priorities among `supported` (the SECC's configured protocols).

    Entries with an unknown namespace, a protocol not in `supported` or another major
    version are skipped. Among equal priorities the EV's order decides.
    """
    best: tuple[int, int, AppProtocol, apphand.AppProtocolType] | None = None
    for index, entry in enumerate(request.AppProtocol):
        protocol = _BY_NAMESPACE.get(entry.ProtocolNamespace)
        if protocol is None or protocol not in supported:
            continue
        if entry.VersionNumberMajor != protocol.value.major:
            continue
        key = (entry.Priority, index)
        if best is None or key < best[:2]:
            best = (entry.Priority, index, protocol, entry)
    if best is None:
        return Negotiated(apphand.supportedAppProtocolRes(ResponseCode=_FAILED), None, None)
    _priority, _index, protocol, entry = best
    code = _OK if entry.VersionNumberMinor == protocol.value.minor else _OK_MINOR
    response = apphand.supportedAppProtocolRes(ResponseCode=code, SchemaID=entry.SchemaID)
    return Negotiated(response, protocol, entry)


def offer(protocols: Sequence[AppProtocol]) -> apphand.supportedAppProtocolReq:
    """The EV's request: `protocols` in order of preference (priority 1, 2, ...), SchemaID
    numbered from 1 in the same order."""
    if not 1 <= len(protocols) <= 20:
        raise ValueError("offer between 1 and 20 protocols")
    if len(set(protocols)) != len(protocols):
        raise ValueError("each protocol may be offered once")
    return apphand.supportedAppProtocolReq(
        AppProtocol=[
            apphand.AppProtocolType(
                ProtocolNamespace=p.namespace,
                VersionNumberMajor=p.value.major,
                VersionNumberMinor=p.value.minor,
                SchemaID=i,
                Priority=i,
            )
            for i, p in enumerate(protocols, start=1)
        ]
    )


def accepted(
    request: apphand.supportedAppProtocolReq, response: apphand.supportedAppProtocolRes
) -> AppProtocol | None:
    """The EV side: which of its offered protocols the SECC chose, or None (failed, or a
    SchemaID the EV did not offer)."""
    if response.ResponseCode == _FAILED or response.SchemaID is None:
        return None
    for entry in request.AppProtocol:
        if entry.SchemaID == response.SchemaID:
            return _BY_NAMESPACE.get(entry.ProtocolNamespace)
    return None
