"""The operator hook: who may charge, where certificates come from, where billing goes.

Implement `Backend` (subclass it; every hook is a typed, overridable method of the class, no
global registry) and name it in the configuration as ``module:Class`` (`load_backend`). The
asyncio adapter calls it when the session core emits `Authorize` / `RequestCertificate` /
`SessionEnded` and feeds the answer back; the core never awaits it.

* `authorize(AuthorizationRequest) -> AuthorizationDecision`;
* `certificate_installation` / `certificate_update`: ISO 15118-2 typed. The request carries the
  decoded CertificateInstallationReq / CertificateUpdateReq, its Header.Signature and the raw
  EXI message (a backend that forwards to a CPS, e.g. OCPP Get15118EVCertificate, sends the
  EXI as received); the answer is a `ProvisioningResult` (body and Header.Signature ready to
  send), or a `pki.errors.PkiError` subclass raised, whose `response_code` the SECC answers
  with. The default refuses with ``FAILED_NoCertificateAvailable``;
* `session_ended(BillingRecord)`: the hand-off, called after the record is durably stored in
  the SECC's own store. It must be idempotent on `record_id` (after a crash the adapter may
  hand the same record over again).

`LocalBackend` is the stand-alone operator for tests, the demo and small sites: allow-lists,
free charging, a `SessionStore` for the billing records and an optional local provisioning.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exi_schemas import iso2, xmldsig
from pki.emaid import parse_emaid
from pki.errors import EmaidError, NoCertificateAvailableError
from secc.provisioning import CertificateProvisioning, ProvisioningResult
from secc.records import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
    IdentificationKind,
)
from secc.store import SessionStore

__all__ = [
    "ANY",
    "Backend",
    "CertificateInstallationRequest",
    "CertificateUpdateRequest",
    "LocalBackend",
    "load_backend",
    "normalise_emaid",
]

log = logging.getLogger(__name__)

ANY = "*"  # in an allow-list: every verified contract / every id token


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateInstallationRequest:
    session_id: str  # hex of the SessionID
    evse_id: str
    body: iso2.CertificateInstallationReqType
    signature: xmldsig.SignatureType | None = None  # the request's Header.Signature
    exi: bytes | None = None  # the whole V2G_Message as received


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateUpdateRequest:
    session_id: str
    evse_id: str
    body: iso2.CertificateUpdateReqType
    signature: xmldsig.SignatureType | None = None
    exi: bytes | None = None


class Backend(abc.ABC):
    """The operator's side of the SECC (see the module docstring)."""

    @abc.abstractmethod
    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        """May this session charge? Contract sessions arrive with a verified contract chain
        (the SECC checked it and the eMAID against the certificate)."""

    async def certificate_installation(
        self, request: CertificateInstallationRequest
    ) -> ProvisioningResult[iso2.CertificateInstallationResType]:
        """A new contract certificate for the car; raise a PkiError to refuse."""
        raise NoCertificateAvailableError("this charger offers no certificate installation")

    async def certificate_update(
        self, request: CertificateUpdateRequest
    ) -> ProvisioningResult[iso2.CertificateUpdateResType]:
        """A renewed contract certificate for the car; raise a PkiError to refuse."""
        raise NoCertificateAvailableError("this charger offers no certificate update")

    @abc.abstractmethod
    async def session_ended(self, record: BillingRecord) -> None:
        """The billing record of a finished session (already stored durably by the SECC);
        idempotent on `record.record_id`."""


def normalise_emaid(text: str) -> str:
    """Upper case without hyphens or spaces (``de-abc-c12345678-9`` -> ``DEABCC123456789``);
    the check digit is kept as given, and is not required."""
    try:
        return parse_emaid(text, require_check_digit=False).normalised
    except EmaidError:
        return "".join(text.split()).replace("-", "").upper()


def _emaid_key(text: str) -> str:
    """The first 14 characters identify the contract; the check digit is optional."""
    return normalise_emaid(text)[:14]


class LocalBackend(Backend):
    """An operator without a server.

    * Plug & Charge: `allowed_emaids` (any spelling; the check digit may be left out; ``"*"``
      accepts every contract the SECC verified);
    * External identification: `allowed_id_tokens` (``"*"``: every token), or
      `free_charging` (every EIM session, with or without a token);
    * billing: records go to `store` (a `SessionStore`, or a path for one);
    * certificates: `provisioning` (e.g. `secc.provisioning.LocalProvisioning`), else refused.
    """

    def __init__(
        self,
        *,
        store: SessionStore | str | Path,
        allowed_emaids: Iterable[str] = (),
        allowed_id_tokens: Iterable[str] = (),
        free_charging: bool = False,
        provisioning: CertificateProvisioning | None = None,
    ) -> None:
        self.store = store if isinstance(store, SessionStore) else SessionStore(store)
        emaids = list(allowed_emaids)
        self._any_contract = ANY in emaids
        self._emaids = frozenset(_emaid_key(e) for e in emaids if e != ANY)
        tokens = list(allowed_id_tokens)
        self._any_token = ANY in tokens
        self._tokens = frozenset(t.strip() for t in tokens if t != ANY)
        self._free = free_charging
        self._provisioning = provisioning

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        decision = self._decide(request)
        log.info(
            "authorisation %s: %s %s",
            decision.status.value,
            request.kind.value,
            decision.reason,
            extra={"session_id": request.session_id},
        )
        return decision

    def _decide(self, request: AuthorizationRequest) -> AuthorizationDecision:
        if request.kind is IdentificationKind.CONTRACT:
            if not request.contract_id:
                return _rejected("no contract ID")
            if self._any_contract or _emaid_key(request.contract_id) in self._emaids:
                return _accepted(f"contract {normalise_emaid(request.contract_id)}")
            return _rejected(f"contract {normalise_emaid(request.contract_id)} is not allowed")
        if self._free:
            return _accepted("free charging")
        token = (request.id_token or "").strip()
        if not token:
            return _rejected("no identification token")
        if self._any_token or token in self._tokens:
            return _accepted(f"token {token}")
        return _rejected(f"token {token} is not allowed")

    async def certificate_installation(
        self, request: CertificateInstallationRequest
    ) -> ProvisioningResult[iso2.CertificateInstallationResType]:
        if self._provisioning is None:
            return await super().certificate_installation(request)
        return self._provisioning.install(request.body, signature=request.signature)

    async def certificate_update(
        self, request: CertificateUpdateRequest
    ) -> ProvisioningResult[iso2.CertificateUpdateResType]:
        if self._provisioning is None:
            return await super().certificate_update(request)
        return self._provisioning.update(request.body, signature=request.signature)

    async def session_ended(self, record: BillingRecord) -> None:
        """Store the record, unless it is already there (the server commits it to the same
        store before the backend hears of it; a backend with a store of its own keeps a
        copy)."""
        if self.store.billing_record(record.record_id) is None:
            self.store.record_billing(record)


def _accepted(reason: str) -> AuthorizationDecision:
    return AuthorizationDecision(status=AuthorizationStatus.ACCEPTED, reason=reason)


def _rejected(reason: str) -> AuthorizationDecision:
    return AuthorizationDecision(status=AuthorizationStatus.REJECTED, reason=reason)


def load_backend(spec: str, **options: Any) -> Backend:
    """Import `module:Class` and build it with `options` (from configuration)."""
    from secc.evse import load_plugin

    backend: Backend = load_plugin(spec, Backend, "backend", options)
    return backend
