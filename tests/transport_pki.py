"""Small test PKIs for the TCP/TLS transport tests, generated on the fly with `cryptography`.

ISO 15118-2 (TLS 1.2, the EV authenticates the SECC only):

    V2G root -> CPO Sub-CA 1 -> CPO Sub-CA 2 -> SECC leaf     (P-256, ECDSA-SHA256)

ISO 15118-20 (TLS 1.3, mutual authentication):

    V2G root -> CPO Sub-CA 1 -> CPO Sub-CA 2 -> SECC leaf         (P-521, ECDSA-SHA512)
    OEM root -> OEM Sub-CA 1 -> OEM Sub-CA 2 -> vehicle leaf      (P-521, ECDSA-SHA512)

plus an unrelated "rogue" root with its own SECC and vehicle chains, for the wrong-root cases.
The certificates follow the shape of the V2G profiles (CA flags, path lengths, key usages, key
identifiers) closely enough for OpenSSL's chain building; they are test material, not a
conformance reference.

`session_pki(tmp_path_factory)` writes everything once per test session (PEM and DER, the SECC
keys also password-protected) and returns the paths; later calls return the cached result.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEY_PASSWORD = b"test-password"

_NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(2049, 12, 31, tzinfo=datetime.UTC)


@dataclass(frozen=True, slots=True)
class Issued:
    """One certificate and its private key, in memory."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class LeafFiles:
    """A leaf's chain and key on disk, in every form the TLS config accepts."""

    chain_pem: tuple[Path, ...]  # leaf first, then Sub-CA 2, Sub-CA 1 (one PEM file each)
    chain_der: tuple[Path, ...]  # the same certificates, DER
    key_pem: Path  # PKCS#8 PEM, unencrypted
    key_pem_encrypted: Path  # PKCS#8 PEM, encrypted with KEY_PASSWORD
    key_der: Path  # PKCS#8 DER, unencrypted
    key_der_encrypted: Path  # PKCS#8 DER, encrypted with KEY_PASSWORD
    key_sec1_der: Path  # SEC1 ("EC PRIVATE KEY") DER


@dataclass(frozen=True, slots=True)
class TransportPKI:
    """Every path the transport tests use."""

    iso2_v2g_root: Path
    iso2_v2g_root_der: Path
    iso2_secc: LeafFiles
    iso20_v2g_root: Path
    iso20_oem_root: Path
    iso20_secc: LeafFiles
    iso20_vehicle: LeafFiles
    rogue_root: Path  # P-256 and unrelated to everything above
    rogue_root_p521: Path
    rogue_iso2_secc: LeafFiles  # a P-256 SECC chain under the rogue root
    rogue_vehicle: LeafFiles  # a P-521 vehicle chain under the rogue root
    iso2_secc_p384: LeafFiles  # a chain whose leaf is on the wrong curve for ISO 15118-2


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        ]
    )


def _hash_for(curve: ec.EllipticCurve) -> hashes.SHA256 | hashes.SHA512:
    return hashes.SHA512() if isinstance(curve, ec.SECP521R1) else hashes.SHA256()


def _issue(
    common_name: str,
    curve: ec.EllipticCurve,
    issuer: Issued | None,
    *,
    path_length: int | None = None,
    ca: bool = True,
) -> Issued:
    """A CA (path_length set) or leaf certificate, self-signed when `issuer` is None."""
    key = ec.generate_private_key(curve)
    subject = _name(common_name, "iso15118-stack tests")
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    else:
        usage = x509.KeyUsage(True, False, False, False, True, False, False, False, False)
    builder = builder.add_extension(usage, critical=True)
    cert = builder.sign(signer_key, _hash_for(signer_key.curve))
    return Issued(cert, key)


def _chain(
    prefix: str, curve: ec.EllipticCurve, root: Issued, leaf_name: str
) -> tuple[Issued, Issued, Issued]:
    """Sub-CA 1 -> Sub-CA 2 -> leaf under `root`: returned leaf first."""
    sub1 = _issue(f"{prefix} Sub-CA 1", curve, root, path_length=1)
    sub2 = _issue(f"{prefix} Sub-CA 2", curve, sub1, path_length=0)
    leaf = _issue(leaf_name, curve, sub2, ca=False)
    return leaf, sub2, sub1


def _write_cert(folder: Path, name: str, cert: x509.Certificate) -> tuple[Path, Path]:
    pem = folder / f"{name}.pem"
    der = folder / f"{name}.der"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return pem, der


def _write_leaf(folder: Path, name: str, chain: tuple[Issued, Issued, Issued]) -> LeafFiles:
    folder.mkdir(parents=True, exist_ok=True)
    pems: list[Path] = []
    ders: list[Path] = []
    for index, issued in enumerate(chain):
        pem, der = _write_cert(folder, f"{name}-{index}", issued.cert)
        pems.append(pem)
        ders.append(der)
    key = chain[0].key
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    encrypted = serialization.BestAvailableEncryption(KEY_PASSWORD)
    paths = {
        "key_pem": (serialization.Encoding.PEM, pkcs8, plain),
        "key_pem_encrypted": (serialization.Encoding.PEM, pkcs8, encrypted),
        "key_der": (serialization.Encoding.DER, pkcs8, plain),
        "key_der_encrypted": (serialization.Encoding.DER, pkcs8, encrypted),
        "key_sec1_der": (
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            plain,
        ),
    }
    written: dict[str, Path] = {}
    for field, (encoding, fmt, protection) in paths.items():
        path = folder / f"{name}.{field}"
        path.write_bytes(key.private_bytes(encoding, fmt, protection))
        path.chmod(0o600)
        written[field] = path
    return LeafFiles(chain_pem=tuple(pems), chain_der=tuple(ders), **written)


def generate(folder: Path) -> TransportPKI:
    """Generate every chain into `folder` (a few tens of milliseconds)."""
    p256, p384, p521 = ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()
    iso2_root = _issue("V2G Root CA (ISO-2 test)", p256, None, path_length=2)
    iso20_root = _issue("V2G Root CA (ISO-20 test)", p521, None, path_length=2)
    oem_root = _issue("OEM Root CA (ISO-20 test)", p521, None, path_length=2)
    rogue = _issue("Rogue Root CA", p256, None, path_length=2)
    rogue_521 = _issue("Rogue Root CA P-521", p521, None, path_length=2)

    iso2_root_pem, iso2_root_der = _write_cert(folder, "iso2-v2g-root", iso2_root.cert)
    iso20_root_pem, _ = _write_cert(folder, "iso20-v2g-root", iso20_root.cert)
    oem_root_pem, _ = _write_cert(folder, "iso20-oem-root", oem_root.cert)
    rogue_pem, _ = _write_cert(folder, "rogue-root", rogue.cert)
    rogue_521_pem, _ = _write_cert(folder, "rogue-root-p521", rogue_521.cert)
    return TransportPKI(
        iso2_v2g_root=iso2_root_pem,
        iso2_v2g_root_der=iso2_root_der,
        iso2_secc=_write_leaf(
            folder / "iso2", "secc", _chain("CPO", p256, iso2_root, "SECC DE*ABC*E1")
        ),
        iso20_v2g_root=iso20_root_pem,
        iso20_oem_root=oem_root_pem,
        iso20_secc=_write_leaf(
            folder / "iso20", "secc", _chain("CPO", p521, iso20_root, "SECC DE*ABC*E1")
        ),
        iso20_vehicle=_write_leaf(
            folder / "iso20", "vehicle", _chain("OEM", p521, oem_root, "WMI0123456789AB")
        ),
        rogue_root=rogue_pem,
        rogue_root_p521=rogue_521_pem,
        rogue_iso2_secc=_write_leaf(
            folder / "rogue", "secc", _chain("Rogue CPO", p256, rogue, "SECC rogue")
        ),
        rogue_vehicle=_write_leaf(
            folder / "rogue", "vehicle", _chain("Rogue OEM", p521, rogue_521, "WMIROGUE")
        ),
        iso2_secc_p384=_write_leaf(
            folder / "p384", "secc", _chain("CPO P-384", p384, iso2_root, "SECC P-384")
        ),
    )


_CACHE: dict[Path, TransportPKI] = {}


def session_pki(tmp_path_factory: pytest.TempPathFactory) -> TransportPKI:
    """The PKI of this test session, generated on first use into its temporary folder."""
    base = tmp_path_factory.getbasetemp()
    if base not in _CACHE:
        _CACHE[base] = generate(tmp_path_factory.mktemp("transport-pki"))
    return _CACHE[base]
