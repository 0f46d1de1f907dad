"""CertificateInstallationReq and CertificateUpdateReq (ISO 15118-2 8.4.3.8-9).

The request goes to the backend (the operator's certificate provisioning service); these
responses have no Ongoing, so the session core holds the answer back (a handler returning
`response=None`) until the backend's `CertificateResult` arrives or its time runs out.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from exi_schemas import iso2
from secc.context import Context, Outcome, SessionData
from secc.errors import BackendFailure
from secc.events import CertificateKind, RequestCertificate
from secc.iso2.state import State


def _certificate(kind: str, req: Any, ctx: Context, data: SessionData) -> Outcome[State]:
    result = ctx.certificate
    if result is None:
        if data.certificate_requested:
            return Outcome(response=None)
        command = RequestCertificate(
            kind,
            req,
            data.session_id.hex().upper(),
            evse_id=ctx.evse_id,
            signature=ctx.header_signature,
            exi=ctx.raw,
        )
        new = dataclasses.replace(data, certificate_requested=True)
        return Outcome(response=None, data=new, commands=(command,))
    if result.error_code is not None or result.body is None:
        raise BackendFailure(result.error_code or "FAILED")
    new = dataclasses.replace(data, certificate_requested=False)
    return Outcome(response=result.body, signature=result.signature, data=new)


def handle_certificate_installation(
    req: iso2.CertificateInstallationReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    return _certificate(CertificateKind.INSTALLATION, req, ctx, data)


def handle_certificate_update(
    req: iso2.CertificateUpdateReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    return _certificate(CertificateKind.UPDATE, req, ctx, data)
