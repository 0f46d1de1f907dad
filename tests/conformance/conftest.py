"""Fixtures of the SECC conformance cases: one test PKI (and a foreign one) per session."""

from __future__ import annotations

import pytest
from kit import Env
from session_pair import Clock

from pki.create import create_pki
from pki.profiles import Standard


@pytest.fixture(scope="session")
def env() -> Env:
    at = Clock().wall()
    return Env(pki=create_pki(Standard.ISO2, at=at), foreign=create_pki(Standard.ISO2, at=at))
