"""The error hierarchy's response codes and the profile table's consistency."""

from __future__ import annotations

import inspect

import pytest

from exi_schemas import iso2, iso20_common_types
from pki import errors
from pki.profiles import (
    PROFILES,
    PURPOSE_LEAF,
    STANDARDS,
    KeyAlgorithm,
    KeyUsageBit,
    Purpose,
    Role,
    Standard,
    chain_roles,
    profile,
)

ERROR_CLASSES = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.PkiError)
]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_carries_tokens_of_the_generated_enums(cls: type[errors.PkiError]) -> None:
    assert cls.response_code in {m.value for m in iso2.responseCodeType}
    assert cls.iso20_response_code in {m.value for m in iso20_common_types.responseCodeType}
    assert cls.response_code.startswith("FAILED")


def test_error_codes_per_standard() -> None:
    err = errors.CertificateRevokedError("revoked", subject="CN=x")
    assert err.response_code_for(Standard.ISO2) == "FAILED_CertificateRevoked"
    assert err.response_code_for(Standard.ISO20) == "WARNING_CertificateRevoked"
    assert str(err) == "CN=x: revoked"
    assert isinstance(errors.PathLenViolatedError("x"), errors.ChainError)


def test_schema_limits_match_the_generated_code() -> None:
    assert "length 0..800" in inspect.getsource(iso2.CertificateChainType)
    assert STANDARDS[Standard.ISO2].max_der_size == 800
    assert STANDARDS[Standard.ISO20].max_der_size == 1600


def test_algorithms() -> None:
    assert STANDARDS[Standard.ISO2].key_algorithms == {KeyAlgorithm.SECP256R1}
    assert STANDARDS[Standard.ISO20].key_algorithms == {KeyAlgorithm.SECP521R1, KeyAlgorithm.ED448}


@pytest.mark.parametrize("standard", list(Standard))
def test_table_is_consistent(standard: Standard) -> None:
    table = PROFILES[standard]
    for role, p in table.items():
        assert p.role is role
        if p.issuer is not None:
            assert table[p.issuer].is_ca, role
        if p.is_ca:
            assert p.key_usage_required == {KeyUsageBit.KEY_CERT_SIGN, KeyUsageBit.CRL_SIGN}
        else:
            assert p.path_len is None
            assert KeyUsageBit.DIGITAL_SIGNATURE in p.key_usage_required
        assert p.key_usage_required <= p.key_usage_allowed
    for purpose in PURPOSE_LEAF[standard]:
        assert len(chain_roles(standard, purpose)) <= STANDARDS[standard].max_below_root


def test_roles_per_standard() -> None:
    assert Role.OEM_PROVISIONING in PROFILES[Standard.ISO2]
    assert Role.VEHICLE not in PROFILES[Standard.ISO2]
    assert Role.VEHICLE in PROFILES[Standard.ISO20]
    with pytest.raises(ValueError, match="no vehicle"):
        profile(Standard.ISO2, Role.VEHICLE)
    assert profile(Standard.ISO2, Role.SECC).domain_component == "CPO"
    assert profile(Standard.ISO2, Role.CONTRACT).domain_component == "MO"
    assert profile(Standard.ISO20, Role.MO_SUB_CA_1).path_len == 1
    assert profile(Standard.ISO20, Role.MO_SUB_CA_2).path_len == 0
    assert chain_roles(Standard.ISO20, Purpose.VEHICLE) == (
        Role.VEHICLE,
        Role.OEM_SUB_CA_2,
        Role.OEM_SUB_CA_1,
    )


CORE_MODULES = [
    "chain",
    "create",
    "crl",
    "emaid",
    "errors",
    "lint",
    "ocsp",
    "profiles",
    "revocation",
    "store",
]
FORBIDDEN_IMPORTS = {"asyncio", "socket", "ssl", "time", "urllib", "http"}


@pytest.mark.parametrize("name", CORE_MODULES)
def test_cores_are_sans_io(name: str) -> None:
    """No network or clock in the PKI cores: time comes in as `at`, fetching is injected."""
    import ast
    import re
    from pathlib import Path

    import pki

    source = (Path(pki.__file__).parent / f"{name}.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN_IMPORTS
    assert "datetime.now" not in source and "utcnow" not in source
    assert not re.search(r"\bprint\(", source)
