"""DIN SPEC 70121 (DC, external payment): the EV's request builders and reactions."""

from evcc.din.machine import DIN_DIALECT

__all__ = ["DIN_DIALECT"]
