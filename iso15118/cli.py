"""The ``iso15118`` command line.

    iso15118 exi decode --schema iso2 [--xml] [--fragment] HEX   (HEX may be - for stdin)
    iso15118 exi encode --schema iso2 [--fragment] < message.json
    iso15118 exi schemas
    iso15118 trace [--json] [--schema-override NAMESPACE=SCHEMA] FILE   (pcap, pcapng, .dump)
    iso15118 pki create --out DIR [--profile iso2|iso20] [--password PW]
    iso15118 pki verify-contract --trust DIR --chain FILE [--emaid EMAID] [--at TIME]
                                 [--revocation off|ocsp|full] [--no-revocation-info accept|reject]
    iso15118 pki lint FILE
    iso15118 ev run --config FILE [--host H --port P] [--interface IF] [--check]
    iso15118 status [--url URL] [--token T | --token-file F] [--config FILE] [--json]
    iso15118 billing list|show|retry (--config FILE | --data-dir DIR) ...
    iso15118 ledger --ledger FILE topup ACCOUNT AMOUNT | balance [ACCOUNT] | history ACCOUNT

Bad input (hex, JSON, bytes/objects the codec rejects, a file that is not a readable capture)
gives one ``error: ...`` line on stderr and exit code 2, as do usage errors. A capture that can
be read exits 0, whatever its payloads: `trace` reports undecodable ones on their line and counts
them in its summary. The codec (and scapy) are imported only when a command needs them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iso15118.trace.capture import Capture
    from iso15118.trace.schemas import Schema

EXIT_USAGE = 2


def read_hex(text: str) -> bytes:
    """Bytes from a hex string that may contain whitespace; ``-`` reads the hex from stdin."""
    if text == "-":
        text = sys.stdin.read()
    digits = "".join(text.split())
    try:
        data = bytes.fromhex(digits)
    except ValueError as exc:
        raise ValueError(f"invalid hex input: {exc}") from exc
    if not data:
        raise ValueError("no input bytes")
    return data


def read_json_object(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON input: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _check_schema(schemas: tuple[str, ...], schema: str) -> None:
    if schema not in schemas:
        raise ValueError(f"unknown schema {schema!r} (choose from {', '.join(schemas)})")


def _exi_decode(args: argparse.Namespace) -> None:
    data = read_hex(args.hex)
    from iso15118 import exi

    _check_schema(exi.SCHEMAS, args.schema)
    decode = exi.decode_fragment if args.fragment else exi.decode
    message = decode(args.schema, data)
    print(exi.to_xml(message) if args.xml else json.dumps(exi.to_json(message), indent=2))


def _exi_encode(args: argparse.Namespace) -> None:
    obj = read_json_object(sys.stdin.read())
    from iso15118 import exi

    _check_schema(exi.SCHEMAS, args.schema)
    if args.fragment:
        data = exi.encode_fragment(args.schema, exi.from_json_fragment(args.schema, obj))
    else:
        data = exi.encode(args.schema, exi.from_json(args.schema, obj))
    print(data.hex())


def _exi_schemas(args: argparse.Namespace) -> None:
    from iso15118 import exi

    print("\n".join(exi.SCHEMAS))


def _trace(args: argparse.Namespace) -> None:
    namespaces = schema_overrides(args.schema_override)
    from iso15118.trace.render import ASCII_ARROWS, json_lines, text_lines
    from iso15118.trace.report import build_trace

    trace = build_trace(read_capture_file(args.file), namespaces=namespaces)
    if args.json:
        lines = json_lines(trace)
    else:
        lines = text_lines(trace, None if _can_print("→↔") else ASCII_ARROWS)
    for line in lines:
        print(line)


def schema_overrides(pairs: list[str]) -> dict[str, Schema]:
    """The namespace -> grammar table for `trace`, extended by NAMESPACE=SCHEMA pairs."""
    from iso15118.trace.schemas import NAMESPACE_SCHEMAS, Schema

    table = dict(NAMESPACE_SCHEMAS)
    allowed = (Schema.DIN, Schema.ISO2)  # the grammars of payload type 0x8001
    for pair in pairs:
        namespace, _, name = pair.rpartition("=")
        if not namespace or name not in allowed:
            choices = ", ".join(s.value for s in allowed)
            raise ValueError(f"--schema-override {pair!r}: expected NAMESPACE=SCHEMA ({choices})")
        table[namespace] = Schema(name)
    return table


def read_capture_file(path: str) -> Capture:
    """`iso15118.trace.parse_capture(path)`; a file that cannot be read raises ValueError."""
    try:
        from scapy.error import Scapy_Exception

        from iso15118.trace.capture import parse_capture
    except ImportError as exc:
        raise ValueError(
            f"reading captures needs scapy: pip install 'iso15118-stack[trace]' ({exc})"
        ) from exc
    try:
        return parse_capture(path)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except Scapy_Exception as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def _can_print(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iso15118", description="ISO 15118 protocol tools.")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    exi = commands.add_parser("exi", help="EXI codec", description="Encode and decode EXI.")
    exi_commands = exi.add_subparsers(title="commands", required=True, metavar="COMMAND")

    schema_help = "grammar to use; `iso15118 exi schemas` lists them (e.g. appHand, din, iso2)"
    fragment_help = "an EXI fragment (as digested for XML signatures), not a whole document"

    decode = exi_commands.add_parser("decode", help="decode an EXI stream given as hex")
    decode.add_argument("--schema", required=True, help=schema_help)
    decode.add_argument("--xml", action="store_true", help="print XML instead of JSON")
    decode.add_argument("--fragment", action="store_true", help=fragment_help)
    decode.add_argument("hex", metavar="HEX", help="the EXI bytes in hex, or - to read stdin")
    decode.set_defaults(run=_exi_decode)

    encode = exi_commands.add_parser("encode", help="encode a JSON message read from stdin")
    encode.add_argument("--schema", required=True, help=schema_help)
    encode.add_argument("--fragment", action="store_true", help=fragment_help)
    encode.set_defaults(run=_exi_encode)

    schemas = exi_commands.add_parser("schemas", help="list the schema names")
    schemas.set_defaults(run=_exi_schemas)

    trace = commands.add_parser(
        "trace",
        help="decode the V2G messages of a packet capture",
        description="Print the SDP, V2GTP and EXI messages of a capture (pcap, pcapng, .dump), "
        "one line each, decoded with the schema its SupportedAppProtocol handshake negotiated.",
    )
    trace.add_argument("file", metavar="FILE", help="the capture file")
    trace.add_argument(
        "--json", action="store_true", help="one JSON object per line, with the full message"
    )
    trace.add_argument(
        "--schema-override",
        metavar="NAMESPACE=SCHEMA",
        action="append",
        default=[],
        help="decode the messages of connections that negotiated NAMESPACE with SCHEMA "
        "(din or iso2), e.g. urn:tesla:din:2018:MsgDef=din; repeatable",
    )
    trace.set_defaults(run=_trace)

    from pki.commands import add_parser as add_pki_parser

    add_pki_parser(commands)
    from secc.commands import add_parser as add_secc_parser

    add_secc_parser(commands)
    from secc.billing.commands import add_parser as add_billing_parser

    add_billing_parser(commands)
    from secc.billing.ledger_commands import add_parser as add_ledger_parser

    add_ledger_parser(commands)
    from evcc.commands import add_parser as add_ev_parser

    add_ev_parser(commands)
    from secc.status_command import add_parser as add_status_parser

    add_status_parser(commands)
    demo = commands.add_parser(
        "demo",
        help="a Plug & Charge session on this machine",
        description="Create a test PKI, start the SECC and the EV simulator on ::1 and run an "
        "ISO 15118-2 DC Plug & Charge session over TLS with certificate installation.",
    )
    demo.set_defaults(run=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from iso15118.demo import run_demo

    return run_demo()


def _is_input_error(exc: Exception) -> bool:
    """Bad hex or JSON (ValueError), or anything the codec rejects (``ExiError``)."""
    if isinstance(exc, ValueError):  # includes iso15118.yamlconf.ConfigError
        return True
    exi = sys.modules.get("iso15118.exi")  # only set once a command has imported the codec
    return exi is not None and isinstance(exc, exi.ExiError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error or the help text
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code = args.run(args)  # the pki commands return their exit code
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as exc:
        if not _is_input_error(exc):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return code if isinstance(code, int) else 0
