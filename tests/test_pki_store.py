"""The trust store on disk: PEM and DER, reload without restart, expiry report."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from pki.create import TestPki, create_pki, issue, replace, template_for
from pki.profiles import Role, Standard
from pki.store import TrustStore, load_certificates

AT = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return create_pki(Standard.ISO2, at=AT)


def _write(path: Path, data: bytes, stamp: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(stamp, stamp))  # distinct mtimes however fast the test runs


def test_pem_and_der_roots_and_intermediates(tmp_path: Path, pki: TestPki) -> None:
    _write(tmp_path / "v2g.pem", pki[Role.V2G_ROOT].certificate.public_bytes(Encoding.PEM), 1)
    _write(tmp_path / "mo.der", pki[Role.MO_ROOT].certificate.public_bytes(Encoding.DER), 1)
    subs = b"".join(c.public_bytes(Encoding.PEM) for c in pki.chain(Role.CONTRACT)[1:])
    _write(tmp_path / "mo-subs.crt", subs, 1)
    _write(tmp_path / "notes.txt", b"ignored", 1)
    _write(tmp_path / "broken.pem", b"-----BEGIN CERTIFICATE-----\nxx\n", 1)
    store = TrustStore.from_directory(tmp_path)
    assert set(store.roots) == {pki[Role.V2G_ROOT].certificate, pki[Role.MO_ROOT].certificate}
    assert set(store.intermediates) == set(pki.chain(Role.CONTRACT)[1:])


def test_reload_picks_up_changes(tmp_path: Path, pki: TestPki) -> None:
    _write(tmp_path / "a.pem", pki[Role.V2G_ROOT].certificate.public_bytes(Encoding.PEM), 1)
    store = TrustStore.from_directory(tmp_path)
    assert store.reload() is False  # nothing changed
    _write(tmp_path / "b.pem", pki[Role.OEM_ROOT].certificate.public_bytes(Encoding.PEM), 2)
    assert store.reload() is True
    assert len(store.roots) == 2
    _write(tmp_path / "a.pem", pki[Role.MO_ROOT].certificate.public_bytes(Encoding.PEM), 3)
    assert store.reload() is True
    assert set(store.roots) == {pki[Role.MO_ROOT].certificate, pki[Role.OEM_ROOT].certificate}
    (tmp_path / "b.pem").unlink()
    assert store.reload() is True
    assert store.roots == (pki[Role.MO_ROOT].certificate,)


def test_expiring(tmp_path: Path, pki: TestPki) -> None:
    t = template_for(Standard.ISO2, Role.V2G_ROOT, at=AT, serial=77)
    soon = replace(t, common_name="soon", not_after=AT + timedelta(days=10))
    key = pki[Role.V2G_ROOT].key
    short = issue(soon, key, None, standard=Standard.ISO2)
    _write(tmp_path / "soon.pem", short.public_bytes(Encoding.PEM), 1)
    _write(tmp_path / "long.pem", pki[Role.MO_ROOT].certificate.public_bytes(Encoding.PEM), 1)
    store = TrustStore.from_directory(tmp_path)
    notices = store.expiring(timedelta(days=30), at=AT)
    assert [n.certificate for n in notices] == [short]
    assert notices[0].remaining == timedelta(days=10)
    assert notices[0].source == tmp_path / "soon.pem"
    assert store.expiring(timedelta(days=5), at=AT) == []
    assert len(store.expiring(timedelta(0), at=AT + timedelta(days=11))) == 1  # expired


def test_concatenated_der(pki: TestPki) -> None:
    chain = pki.chain(Role.CONTRACT)
    data = b"".join(c.public_bytes(Encoding.DER) for c in chain)
    assert load_certificates(data) == chain
    with pytest.raises(ValueError):
        load_certificates(b"\x31\x00")
    with pytest.raises(ValueError):
        load_certificates(b"")
