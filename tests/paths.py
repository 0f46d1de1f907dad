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
