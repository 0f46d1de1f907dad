"""Cost of checking Plug & Charge signatures.

    python benchmarks/pki_bench.py [--repeat 7] [--min-time 0.2]

Prints µs per call (median of the repeats) for verifying an AuthorizationReq signature, the
steps that make it up, the ISO 15118-20 variants, and a contract chain plus the signature
(when `pki.chain` is present).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import platform
import statistics
import sys
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from exi_schemas import iso2, xmldsig
from exi_schemas import iso20_common_messages as cm
from iso15118 import exi
from pki import xmlsig
from pki.xmlsig import SignedMessage

ISO20_CM = "urn:iso:std:iso:15118:-20:CommonMessages"


def median_us(fn: Callable[[], object], repeat: int, min_time: float) -> float:
    timer = timeit.Timer(fn)
    number, elapsed = timer.autorange()  # at least 0.2 s
    number = max(1, math.ceil(number * min_time / elapsed)) if elapsed else number
    runs = timer.repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e6


def iso2_authorization(
    key: ec.EllipticCurvePrivateKey,
) -> tuple[ec.EllipticCurvePublicKey, iso2.AuthorizationReqType, xmldsig.SignatureType]:
    auth = iso2.AuthorizationReqType(Id="ID1", GenChallenge=bytes(range(16)))
    signature = xmlsig.sign([("ID1", auth)], key, message=SignedMessage.ISO2_AUTHORIZATION_REQ)
    return key.public_key(), auth, signature


def bench_iso2(repeat: int, min_time: float) -> list[tuple[str, float]]:
    key = ec.generate_private_key(ec.SECP256R1())
    public, auth, sig = iso2_authorization(key)
    msg = SignedMessage.ISO2_AUTHORIZATION_REQ
    fragment = exi.encode_fragment("iso2", auth)
    info = xmlsig.signed_info_bytes(sig.SignedInfo)
    value = sig.SignatureValue.value
    der = encode_dss_signature(int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big"))
    rows: list[tuple[str, Callable[[], object]]] = [
        ("ISO-2 AuthorizationReq: verify() total",
         lambda: xmlsig.verify(sig, {"ID1": auth}, public, message=msg)),
        ("  encode AuthorizationReq fragment (25 B)", lambda: exi.encode_fragment("iso2", auth)),
        ("  SHA-256 of the fragment", lambda: hashlib.sha256(fragment).digest()),
        ("  encode SignedInfo fragment (209 B)", lambda: xmlsig.signed_info_bytes(sig.SignedInfo)),
        ("  ECDSA P-256 verify over SignedInfo",
         lambda: public.verify(der, info, ec.ECDSA(hashes.SHA256()))),
    ]  # fmt: skip
    return [(name, median_us(fn, repeat, min_time)) for name, fn in rows]


def bench_iso20(repeat: int, min_time: float) -> list[tuple[str, float]]:
    chain = cm.ContractCertificateChainType(
        Certificate=bytes(700), SubCertificates=cm.SubCertificatesType(Certificate=[bytes(700)])
    )
    pnc = cm.PnC_AReqAuthorizationModeType(
        Id="A1", GenChallenge=bytes(16), ContractCertificateChain=chain
    )
    element = exi.Element(ISO20_CM, "PnC_AReqAuthorizationMode", pnc)
    msg = SignedMessage.ISO20_AUTHORIZATION_REQ
    out = []
    keys: list[tuple[str, xmlsig.PrivateKey]] = [
        ("P-521 ECDSA-SHA512", ec.generate_private_key(ec.SECP521R1())),
        ("Ed448 / SHAKE256", ed448.Ed448PrivateKey.generate()),
    ]
    for name, key in keys:
        sig = xmlsig.sign([("A1", element)], key, message=msg)
        public = key.public_key()

        def fn(s: xmldsig.SignatureType = sig, p: xmlsig.PublicKey = public) -> None:
            xmlsig.verify(s, {"A1": element}, p, message=msg)

        out.append(
            (f"ISO-20 PnC_AReqAuthorizationMode, {name}: verify()", median_us(fn, repeat, min_time))
        )
    return out


@dataclass(frozen=True, slots=True)
class _Anchors:
    roots: Sequence[x509.Certificate]
    intermediates: Sequence[x509.Certificate]


def bench_chain(repeat: int, min_time: float) -> list[tuple[str, float]] | str:
    """Contract chain (leaf + 2 sub-CAs to the MO root) + AuthorizationReq signature."""
    try:
        from pki.chain import verify_chain
        from pki.create import create_pki
        from pki.profiles import Purpose, Role, Standard
    except ImportError as exc:
        return f"pending: pki.chain not available ({exc})"
    try:
        now = datetime.now(UTC)
        test_pki = create_pki(Standard.ISO2, at=now)
        leaf, *subs = test_pki.chain(Role.CONTRACT)
        anchors = _Anchors(roots=test_pki.roots(), intermediates=[])
        contract_key = test_pki[Role.CONTRACT].key
        assert isinstance(contract_key, ec.EllipticCurvePrivateKey)
        _public, auth, sig = iso2_authorization(contract_key)
        msg = SignedMessage.ISO2_AUTHORIZATION_REQ

        def chain_only() -> object:
            return verify_chain(
                leaf, subs, anchors, at=now, standard=Standard.ISO2, purpose=Purpose.CONTRACT
            )

        def both() -> None:
            verified = verify_chain(
                leaf, subs, anchors, at=now, standard=Standard.ISO2, purpose=Purpose.CONTRACT
            )
            key = verified.leaf.public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey)
            xmlsig.verify(sig, {"ID1": auth}, key, message=msg)

        both()
    except Exception as exc:  # the chain module is being written alongside this benchmark
        return f"pending: pki.chain did not run ({type(exc).__name__}: {exc})"
    return [
        ("ISO-2 contract chain (leaf + 2 sub-CAs)", median_us(chain_only, repeat, min_time)),
        ("ISO-2 contract chain + AuthorizationReq signature", median_us(both, repeat, min_time)),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2)
    args = parser.parse_args(argv)
    python = f"Python {platform.python_version()} on {platform.machine()}"
    print(f"{python}; µs per call, median of {args.repeat}")
    rows = bench_iso2(args.repeat, args.min_time) + bench_iso20(args.repeat, args.min_time)
    chain = bench_chain(args.repeat, args.min_time)
    if isinstance(chain, str):
        rows.append((f"contract chain + signature: {chain}", float("nan")))
    else:
        rows += chain
    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print(f"{name:<{width}}  {us:10.1f}" if us == us else name)


if __name__ == "__main__":
    main()
