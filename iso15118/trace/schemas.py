"""Which EXI grammar decodes which V2GTP payload of a captured connection.

The first 0x8001 exchange of a V2G connection is the SupportedAppProtocol handshake: the EV's
supportedAppProtocolReq lists AppProtocol entries (namespace, version, SchemaID, priority) and the
EVSE's supportedAppProtocolRes names the chosen SchemaID. The negotiated namespace then fixes the
grammar of every later message ("Which grammar decodes which stream" in the EXI notes):

* `urn:din:70121:2012:MsgDef` → DIN SPEC 70121, `urn:iso:15118:2:2013:MsgDef` → ISO 15118-2
  (both on payload type 0x8001);
* any `urn:iso:std:iso:15118:-20:` namespace → the V2GTP payload type picks the ISO 15118-20
  grammar (0x8002 CommonMessages, 0x8003 AC, 0x8004 DC, 0x8005 ACDP, 0x8006 WPT);
* anything else (e.g. Tesla's `urn:tesla:din:2018:MsgDef`) → no grammar we have.

Without a visible handshake (a capture that starts mid-session) the first two bytes of a 0x8001
payload tell DIN (`80 9a`) from ISO 15118-2 (`80 98`).

Decoding the handshake needs the EXI codec; it is passed in as a `HandshakeDecoder` so that this
logic stays pure and testable. `decode_handshake_with_codec` wires in `iso15118.exi`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from iso15118.sap import AppProtocol as AppProtocol_
from iso15118.v2gtp import PayloadType

__all__ = [
    "ISO20_NAMESPACE_PREFIX",
    "ISO20_SCHEMAS",
    "NAMESPACE_SCHEMAS",
    "PAYLOAD_SIGNATURES",
    "AppProtocol",
    "HandshakeDecoder",
    "HandshakeRequest",
    "HandshakeResponse",
    "Negotiation",
    "Schema",
    "SchemaSource",
    "decode_handshake_with_codec",
    "handshake_from_json",
    "negotiate",
    "schema_for",
    "signature_schema",
]


class Schema(StrEnum):
    """The EXI grammars, named as `iso15118.exi.decode` takes them."""

    APP_HAND = "appHand"
    DIN = "din"
    ISO2 = "iso2"
    ISO20_COMMON = "iso20-common"
    ISO20_AC = "iso20-ac"
    ISO20_DC = "iso20-dc"
    ISO20_ACDP = "iso20-acdp"
    ISO20_WPT = "iso20-wpt"


class SchemaSource(StrEnum):
    HANDSHAKE = "handshake"  # negotiated by the SupportedAppProtocol exchange in the capture
    PAYLOAD_SIGNATURE = "payload-signature"  # no handshake visible: the payload itself decides


#: AppProtocol namespaces whose grammar we have (both travel on payload type 0x8001).
NAMESPACE_SCHEMAS: Final[Mapping[str, Schema]] = {
    p.namespace: Schema(p.schema) for p in AppProtocol_  # the one table: iso15118.sap
}
#: Every ISO 15118-20 namespace starts so; the V2GTP payload type then picks the grammar.
ISO20_NAMESPACE_PREFIX: Final = "urn:iso:std:iso:15118:-20:"
ISO20_SCHEMAS: Final[Mapping[PayloadType, Schema]] = {
    PayloadType.MAINSTREAM: Schema.ISO20_COMMON,
    PayloadType.AC_MAINSTREAM: Schema.ISO20_AC,
    PayloadType.DC_MAINSTREAM: Schema.ISO20_DC,
    PayloadType.ACDP_MAINSTREAM: Schema.ISO20_ACDP,
    PayloadType.WPT_MAINSTREAM: Schema.ISO20_WPT,
}
#: First two bytes of a V2G_Message document: the EXI header 0x80, then the root element's code.
PAYLOAD_SIGNATURES: Final[Mapping[bytes, Schema]] = {
    b"\x80\x9a": Schema.DIN,
    b"\x80\x98": Schema.ISO2,
}


@dataclass(frozen=True, slots=True)
class AppProtocol:
    namespace: str
    version_major: int
    version_minor: int
    schema_id: int
    priority: int


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """supportedAppProtocolReq."""

    protocols: tuple[AppProtocol, ...]


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """supportedAppProtocolRes."""

    response_code: str
    schema_id: int | None = None

    @property
    def successful(self) -> bool:
        return self.response_code.startswith("OK") and self.schema_id is not None


#: Decodes a 0x8001 payload as a SupportedAppProtocol message; None if it is not one.
HandshakeDecoder = Callable[[bytes], HandshakeRequest | HandshakeResponse | None]


def handshake_from_json(document: Mapping[str, Any]) -> HandshakeRequest | HandshakeResponse:
    """The handshake message in `iso15118.exi.to_json()` output for the appHand schema."""
    if "supportedAppProtocolReq" in document:
        entries = document["supportedAppProtocolReq"]["AppProtocol"]
        return HandshakeRequest(
            tuple(
                AppProtocol(
                    namespace=str(entry["ProtocolNamespace"]),
                    version_major=int(entry["VersionNumberMajor"]),
                    version_minor=int(entry["VersionNumberMinor"]),
                    schema_id=int(entry["SchemaID"]),
                    priority=int(entry["Priority"]),
                )
                for entry in entries
            )
        )
    response = document["supportedAppProtocolRes"]
    schema_id = response.get("SchemaID")
    return HandshakeResponse(
        str(response["ResponseCode"]), None if schema_id is None else int(schema_id)
    )


def decode_handshake_with_codec(payload: bytes) -> HandshakeRequest | HandshakeResponse | None:
    """The default `HandshakeDecoder`: the project's EXI codec (imported on first use)."""
    from iso15118 import exi

    try:
        document = exi.to_json(exi.decode(Schema.APP_HAND.value, payload))
    except exi.ExiDecodeError:
        return None
    return handshake_from_json(document)


def schema_for(
    namespace: str,
    payload_type: PayloadType,
    namespaces: Mapping[str, Schema] = NAMESPACE_SCHEMAS,
) -> Schema | None:
    """The grammar of a message sent after `namespace` was negotiated; None if we have none.

    `namespaces` maps the namespaces of 0x8001 protocols to grammars (`NAMESPACE_SCHEMAS`, or an
    extended table, e.g. to read a vendor namespace as DIN).
    """
    if namespace.startswith(ISO20_NAMESPACE_PREFIX):
        return ISO20_SCHEMAS.get(payload_type)
    schema = namespaces.get(namespace)
    return schema if payload_type is PayloadType.SAP else None


def signature_schema(payload_type: PayloadType, payload: bytes) -> Schema | None:
    """The grammar guessed from the payload alone (no handshake seen)."""
    if payload_type is PayloadType.SAP:
        return PAYLOAD_SIGNATURES.get(payload[:2])
    return ISO20_SCHEMAS.get(payload_type)


@dataclass(frozen=True, slots=True)
class Negotiation:
    """The outcome of the handshake at the start of one connection's messages."""

    handshake_messages: int  # how many leading messages belong to the handshake
    concluded: bool  # a supportedAppProtocolRes answered a supportedAppProtocolReq
    namespace: str | None = None  # the negotiated namespace, if the response accepted one


def negotiate(
    messages: Sequence[tuple[PayloadType, bytes]], decode: HandshakeDecoder
) -> Negotiation:
    """Find the SupportedAppProtocol handshake at the start of a connection's messages.

    `messages` are one connection's (payload type, payload) pairs in time order. The handshake
    ends at its response, or at the first message that is not a handshake message.
    """
    request: HandshakeRequest | None = None
    for index, (payload_type, payload) in enumerate(messages):
        if payload_type is not PayloadType.SAP or payload[:2] in PAYLOAD_SIGNATURES:
            return Negotiation(index, False)
        decoded = decode(payload)
        if decoded is None:
            return Negotiation(index, False)
        if isinstance(decoded, HandshakeRequest):
            request = decoded
            continue
        if request is None:  # capture started between request and response
            return Negotiation(index + 1, False)
        if not decoded.successful:
            return Negotiation(index + 1, True)
        chosen = [p.namespace for p in request.protocols if p.schema_id == decoded.schema_id]
        return Negotiation(index + 1, True, chosen[0] if chosen else None)
    return Negotiation(len(messages), False)
