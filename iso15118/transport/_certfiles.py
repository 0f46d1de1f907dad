"""Reading certificate and key files (PEM or DER) for the TLS builders, standard library only.

OpenSSL, as Python's `ssl` module exposes it, loads certificate chains and private keys from PEM
files only. These helpers accept PEM or DER, return PEM text, and read just enough ASN.1 to
tell which key algorithm (and curve) a certificate carries, so that a chain on the wrong curve
is refused when the configuration is built rather than in the middle of a handshake.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CertificateFileError",
    "certificate_key_type",
    "pem_file",
    "read_certificates",
    "read_private_key",
]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)

# DER-encoded OBJECT IDENTIFIER contents -> the names this module reports.
_ALGORITHMS = {
    bytes.fromhex("2a8648ce3d0201"): "ec",  # id-ecPublicKey
    bytes.fromhex("2b6570"): "ed25519",
    bytes.fromhex("2b6571"): "ed448",
    bytes.fromhex("2b656e"): "x25519",
    bytes.fromhex("2b656f"): "x448",
    bytes.fromhex("2a864886f70d010101"): "rsa",
}
_CURVES = {
    bytes.fromhex("2a8648ce3d030107"): "secp256r1",
    bytes.fromhex("2b81040022"): "secp384r1",
    bytes.fromhex("2b81040023"): "secp521r1",
}

_SEQUENCE = 0x30
_INTEGER = 0x02
_OCTET_STRING = 0x04
_OID = 0x06


class CertificateFileError(ValueError):
    """A certificate or key file that cannot be read or has an unexpected content."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """One DER TLV at `pos`: (tag, content start, content end); ValueError when malformed."""
    if pos + 2 > end:
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or pos + count > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise ValueError("DER length beyond the data")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    children = []
    pos = start
    while pos < end:
        child = _tlv(data, pos, end)
        children.append(child)
        pos = child[2]
    return children


def _is_single_sequence(data: bytes) -> bool:
    try:
        tag, _start, stop = _tlv(data, 0, len(data))
    except ValueError:
        return False
    return tag == _SEQUENCE and stop == len(data)


def certificate_key_type(der: bytes) -> str:
    """The subject key of an X.509 certificate: a curve name ("secp256r1", "secp521r1", ...),
    "ed448", "ed25519", "rsa", or "oid:<hex>" / "ec-oid:<hex>" for anything else.

    Raises ValueError for DER that is not a certificate.
    """
    _tag, start, end = _tlv(der, 0, len(der))
    tbs_tag, tbs_start, tbs_end = _tlv(der, start, end)
    if tbs_tag != _SEQUENCE:
        raise ValueError("not an X.509 certificate")
    fields = _children(der, tbs_start, tbs_end)
    if fields and fields[0][0] == 0xA0:  # explicit [0] version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    if len(fields) < 6 or fields[5][0] != _SEQUENCE:
        raise ValueError("not an X.509 certificate")
    _spki_tag, spki_start, spki_end = fields[5]
    algorithm = _children(der, spki_start, spki_end)[0]
    parts = _children(der, algorithm[1], algorithm[2])
    if not parts or parts[0][0] != _OID:
        raise ValueError("no key algorithm in the certificate")
    oid = der[parts[0][1] : parts[0][2]]
    name = _ALGORITHMS.get(oid, "oid:" + oid.hex())
    if name == "ec" and len(parts) > 1 and parts[1][0] == _OID:
        curve = der[parts[1][1] : parts[1][2]]
        return _CURVES.get(curve, "ec-oid:" + curve.hex())
    return name


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateFileError(path, f"cannot read the file ({exc.strerror})") from None


def read_certificates(path: Path) -> list[bytes]:
    """The certificates in a PEM file (one or more) or a DER file (exactly one), as DER."""
    data = _read(path)
    blocks = _PEM_BLOCK.findall(data)
    if blocks:
        ders = []
        for label, body in blocks:
            if label != b"CERTIFICATE":
                continue
            try:
                ders.append(base64.b64decode(body, validate=False))
            except ValueError:
                raise CertificateFileError(path, "bad base64 in a PEM block") from None
        if not ders:
            raise CertificateFileError(path, "no CERTIFICATE block in the PEM file")
    elif _is_single_sequence(data):
        ders = [data]
    else:
        raise CertificateFileError(path, "neither PEM nor a DER certificate")
    for der in ders:
        try:
            certificate_key_type(der)
        except ValueError as exc:
            raise CertificateFileError(path, f"not an X.509 certificate ({exc})") from None
    return ders


def _der_key_label(der: bytes) -> str:
    """The PEM label for a DER private key: PKCS#8, encrypted PKCS#8 or SEC1 (EC)."""
    _tag, start, end = _tlv(der, 0, len(der))
    fields = _children(der, start, end)
    if len(fields) >= 2 and fields[0][0] == _SEQUENCE and fields[1][0] == _OCTET_STRING:
        return "ENCRYPTED PRIVATE KEY"  # EncryptedPrivateKeyInfo
    if len(fields) >= 3 and fields[0][0] == _INTEGER:
        if fields[1][0] == _SEQUENCE and fields[2][0] == _OCTET_STRING:
            return "PRIVATE KEY"  # PrivateKeyInfo (version 0 or 1)
        if fields[1][0] == _OCTET_STRING:
            return "EC PRIVATE KEY"  # ECPrivateKey (RFC 5915)
    raise ValueError("not a PKCS#8 or SEC1 private key")


def read_private_key(path: Path) -> tuple[str, bool]:
    """A private key file (PEM, or DER in PKCS#8, encrypted PKCS#8 or SEC1 form) as PEM text,
    and whether it is encrypted (needs a password)."""
    data = _read(path)
    if b"-----BEGIN" in data:
        labels = [label for label, _ in _PEM_BLOCK.findall(data)]
        if not any(label.endswith(b"PRIVATE KEY") for label in labels):
            raise CertificateFileError(path, "no PRIVATE KEY block in the PEM file")
        encrypted = b"ENCRYPTED PRIVATE KEY" in labels or b"Proc-Type: 4,ENCRYPTED" in data
        return data.decode("ascii", errors="replace"), encrypted
    if not _is_single_sequence(data):
        raise CertificateFileError(path, "neither PEM nor a DER private key")
    try:
        label = _der_key_label(data)
    except ValueError as exc:
        raise CertificateFileError(path, str(exc)) from None
    body = base64.encodebytes(data).decode("ascii")
    pem = f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"
    return pem, label == "ENCRYPTED PRIVATE KEY"


@contextmanager
def pem_file(text: str) -> Iterator[str]:
    """A path holding `text` for as long as the context lasts, for OpenSSL's file loaders.

    Linux: an anonymous memory file (nothing touches the disk). Elsewhere: a 0600 file in a
    private temporary directory, removed on exit.
    """
    data = text.encode("ascii")
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("iso15118-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="iso15118-tls-") as folder:
        path = Path(folder) / "material.pem"
        path.touch(mode=0o600)
        path.write_bytes(data)
        yield str(path)
