"""Errors whose response codes only DIN SPEC 70121 has (the shared ones are in
`secc.errors`)."""

from __future__ import annotations

from secc.errors import V2GError
from secc.records import StopReason

__all__ = ["EnergyTransferTypeError", "OngoingTimeoutError", "PresentVoltageTooLowError"]


class EnergyTransferTypeError(V2GError):
    """ChargeParameterDiscoveryReq asks for a transfer type the EVSE does not offer
    ([V2G-DC-397]); ISO 15118-2 calls this FAILED_WrongEnergyTransferMode."""

    response_code = "FAILED_WrongEnergyTransferType"


class PresentVoltageTooLowError(V2GError):
    """PowerDeliveryReq(ReadyToChargeState=true) while the EVSE output is still well below the
    pre-charge target: closing the car's contactors now would cause an inrush current."""

    response_code = "FAILED_EVSEPresentVoltageToLow"  # sic: the schema's spelling


class OngoingTimeoutError(V2GError):
    """A request has been answered Ongoing for longer than the SECC allows."""

    stop_reason = StopReason.TIMEOUT
