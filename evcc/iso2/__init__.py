"""ISO 15118-2 (AC and DC, EIM and Plug & Charge): the EV's request builders and reactions."""

from evcc.iso2.machine import ISO2_DIALECT

__all__ = ["ISO2_DIALECT"]
