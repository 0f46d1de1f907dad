"""Where the shared material (corpus, XSDs) lives for the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("ISO15118_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CORPUS = SHARED / "corpus"
SCHEMAS = SHARED / "exi_schemas"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not present (set ISO15118_SHARED)")
    return path

#: public_vectors*.json name the libcbv2g codec that checked each vector: our schema name and
#: whether the stream is a fragment
CODEC_KIND: dict[str, tuple[str, bool]] = {
    "apphand": ("appHand", False),
    "din": ("din", False),
    "iso2": ("iso2", False),
    "iso2_frag": ("iso2", True),
    "iso2_xmldsig": ("xmldsig", True),
    "iso20_cm": ("iso20-common", False),
    "iso20_ac": ("iso20-ac", False),
    "iso20_dc": ("iso20-dc", False),
}
