"""What the generic session core needs to know about one application protocol.

Each protocol package (`secc.din`, `secc.iso2`) builds one `ProtocolSpec`: its schema module,
its transition table, its timing table and the few functions that differ (how a FAILED
response is filled). Everything else — finding the request in the body, the response type
of a request, wrapping a response in a V2G_Message — follows from the generated classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import ModuleType
from typing import Any

from iso15118.sap import AppProtocol
from secc.context import Context, Handler, SessionData
from secc.minimal import minimal

__all__ = ["ProtocolSpec", "Timing"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """The SECC's timers of one standard (seconds), each with the requirement it comes from.

    `sequence_timeout`: the longest the SECC waits for the car's next request after a
    response (V2G_SECC_Sequence_Timeout), also used from connection start to the handshake.
    `cp_state_detection`: how long the SECC waits for CP state C/D after PowerDelivery(Start)
    or during CableCheck (V2G_SECC_CPState_Detection_Timeout).
    `ongoing_timeout`: the longest a request may be answered Ongoing before the SECC gives up
    (the car's V2G_EVCC_Ongoing_Timeout; the SECC ends the session when it passes).
    """

    sequence_timeout: float
    cp_state_detection: float
    ongoing_timeout: float
    cable_check_timeout: float
    pre_charge_timeout: float
    #: how long an answer may wait for the backend (certificate installation) before the
    #: SECC answers FAILED: below the car's V2G_EVCC_Msg_Timeout for that message (5 s)
    backend_answer_timeout: float = 4.5
    requirements: Mapping[str, str] = field(default_factory=dict)


StatusFiller = Callable[[type[Any], Context, SessionData], dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolSpec:
    protocol: AppProtocol
    module: ModuleType  # exi_schemas.din / exi_schemas.iso2
    initial_state: Enum
    transitions: Mapping[Any, Mapping[type[Any], Handler]]  # state → request → handler
    timing: Timing
    #: mandatory status fields of a response type (EVSEStatus, charge parameters, ...)
    status_fields: StatusFiller
    session_setup: type[Any]  # the request that may carry any SessionID
    final_states: frozenset[Enum] = frozenset()
    _body_fields: tuple[str, ...] = ()
    _response_types: dict[type[Any], type[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        body_fields = tuple(f.py for f in self.module.BodyType._exi_fields_)
        object.__setattr__(self, "_body_fields", body_fields)
        for f in self.module.BodyType._exi_fields_:
            # the request class is the body field's own type (DIN's SessionStopReq element
            # has the type SessionStopType, not SessionStopReqType)
            if f.py.endswith("Req") and isinstance(f.kind, type):
                res = getattr(self.module, f.py[:-3] + "ResType", None)
                if res is not None:
                    self._response_types[f.kind] = res

    @property
    def schema(self) -> str:
        return self.protocol.schema

    def request_of(self, message: Any) -> Any | None:
        """The request body of a decoded V2G_Message (None: no body element)."""
        body = message.Body
        for name in self._body_fields:
            value = getattr(body, name)
            if value is not None:
                return value
        return None

    def response_type(self, request_type: type[Any]) -> type[Any] | None:
        return self._response_types.get(request_type)

    def response_code(self, token: str) -> Any:
        """The schema's responseCodeType member for `token` (FAILED if it has none)."""
        enum_type = self.module.responseCodeType
        try:
            return enum_type(token)
        except ValueError:
            return enum_type("FAILED")

    def failed_response(
        self, request_type: type[Any], token: str, ctx: Context, data: SessionData
    ) -> Any:
        """A schema-valid response to `request_type` carrying the FAILED code `token`."""
        response_type = self._response_types[request_type]
        fields = self.status_fields(response_type, ctx, data)
        return minimal(response_type, ResponseCode=self.response_code(token), **fields)

    def wrap(self, session_id: bytes, response: Any, signature: Any = None) -> Any:
        """The V2G_Message that carries `response`."""
        m = self.module
        name = type(response).__name__.removesuffix("Type")
        header = m.MessageHeaderType(SessionID=session_id, Signature=signature)
        return m.V2G_Message(Header=header, Body=m.BodyType(**{name: response}))

    @staticmethod
    def name_of(body: Any) -> str:
        """The body element's name (its global element, else the type name less "Type")."""
        element = getattr(type(body), "_exi_element_", None)
        if element:
            return str(element[1])
        return type(body).__name__.removesuffix("Type")
