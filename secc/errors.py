"""The SECC's error hierarchy: each error names the response code it is answered with.

A handler raises one of these when the car's request cannot be served; the dispatcher
(`secc.dispatch`) answers the request with a response of the right type carrying
`response_code` and ends the session, as ISO 15118-2 [V2G2-539] and DIN SPEC 70121
[V2G-DC-665] require after a FAILED response. Codes are the XML tokens shared by DIN and
ISO 15118-2 (`secc.protocol.ProtocolSpec.response_code` maps them to each schema's enum).
PKI failures arrive as `pki.errors.PkiError` and are mapped with its own table.
"""

from __future__ import annotations

from typing import ClassVar

from secc.records import StopReason

__all__ = [
    "BackendFailure",
    "CertificateError",
    "ChallengeError",
    "ChargingProfileError",
    "ContractCanceledError",
    "ContractError",
    "EnergyModeError",
    "MeteringSignatureError",
    "NoChargeServiceError",
    "PaymentSelectionError",
    "PowerDeliveryError",
    "SequenceError",
    "ServiceIdError",
    "ServiceSelectionError",
    "SignatureInvalidError",
    "TariffSelectionError",
    "UnknownSessionError",
    "V2GError",
    "WrongChargeParameterError",
]


class V2GError(Exception):
    """The car's request fails: answer `response_code` and terminate the session."""

    response_code: ClassVar[str] = "FAILED"
    stop_reason: ClassVar[StopReason] = StopReason.PROTOCOL_ERROR

    @property
    def wire_code(self) -> str:
        """The code to answer with (the class's, unless an instance carries its own)."""
        return self.response_code


class SequenceError(V2GError):
    """A request the session's state does not allow [V2G2-538], [V2G-DC-664]."""

    response_code = "FAILED_SequenceError"


class UnknownSessionError(V2GError):
    """The header's SessionID is not this session's [V2G2-540]."""

    response_code = "FAILED_UnknownSession"


class ServiceIdError(V2GError):
    response_code = "FAILED_ServiceIDInvalid"


class ServiceSelectionError(V2GError):
    response_code = "FAILED_ServiceSelectionInvalid"


class PaymentSelectionError(V2GError):
    response_code = "FAILED_PaymentSelectionInvalid"


class SignatureInvalidError(V2GError):
    response_code = "FAILED_SignatureError"


class ChallengeError(V2GError):
    response_code = "FAILED_ChallengeInvalid"


class ContractError(V2GError):
    """The operator refused the contract (unknown or blocked eMAID)."""

    response_code = "FAILED"
    stop_reason = StopReason.AUTHORIZATION_REJECTED


class ContractCanceledError(ContractError):
    response_code = "FAILED_ContractCanceled"


class CertificateError(V2GError):
    response_code = "FAILED_CertChainError"


class WrongChargeParameterError(V2GError):
    response_code = "FAILED_WrongChargeParameter"


class EnergyModeError(V2GError):
    """The requested energy transfer mode is not offered [V2G2-476]."""

    response_code = "FAILED_WrongEnergyTransferMode"


class PowerDeliveryError(V2GError):
    response_code = "FAILED_PowerDeliveryNotApplied"


class ChargingProfileError(V2GError):
    response_code = "FAILED_ChargingProfileInvalid"


class MeteringSignatureError(V2GError):
    response_code = "FAILED_MeteringSignatureNotValid"


class NoChargeServiceError(ServiceSelectionError):
    """PaymentServiceSelection without the charge service [V2G2-?, Table 105]."""

    response_code = "FAILED_NoChargeServiceSelected"


class TariffSelectionError(V2GError):
    response_code = "FAILED_TariffSelectionInvalid"


class CertificateExpiredV2GError(V2GError):
    response_code = "FAILED_CertificateExpired"


class NoCertificateAvailableV2GError(V2GError):
    response_code = "FAILED_NoCertificateAvailable"


class BackendFailure(V2GError):
    """The backend answered with a failure code of its own (e.g. the provisioning service's
    FAILED_NoCertificateAvailable)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code

    @property
    def wire_code(self) -> str:
        return self.code
