"""The codec's exceptions."""

from __future__ import annotations


class ExiError(Exception):
    """Base class of every error the EXI codec raises."""


class ExiDecodeError(ExiError):
    """A malformed, truncated or unsupported EXI stream.

    `bit_offset` is where in the stream (counting the header) decoding stopped and
    `position` names the grammar position (type and state) when known.
    """

    def __init__(self, reason: str, bit_offset: int = 0, position: str = "") -> None:
        self.reason = reason
        self.bit_offset = bit_offset
        self.position = position
        where = f" in {position}" if position else ""
        super().__init__(f"{reason} at bit {bit_offset}{where}")


class ExiEncodeError(ExiError):
    """A message that cannot be encoded: a facet violated, a required field missing, ..."""
