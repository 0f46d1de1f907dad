"""The ``iso15118`` command line: argument handling, input errors, and (once the codec is there)
the demo command and a decode -> encode round trip."""

from __future__ import annotations

import configparser
import importlib
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from iso15118.cli import main, read_hex

ROOT = Path(__file__).resolve().parent.parent


#: EV->EVSE CurrentDemandReq from a Polestar 2 (fw P2.7) charging on EVerest with Josev, DC,
#: ISO 15118-2 (corpus vector v095; the README's decoding example).
POLESTAR_CURRENT_DEMAND = (
    "8098023c3972d3a397e82d50d1002e810601401881ac06010614c3a2801841a1180223103500c0"
)


def demo_argv() -> list[str]:
    """Decode the captured Polestar 2 CurrentDemandReq (the README's example)."""
    return ["exi", "decode", "--schema", "iso2", POLESTAR_CURRENT_DEMAND]


def test_tox_demo_runs_the_demo_command() -> None:
    """`python3 run.py demo` runs tox's demo environment, which must run `iso15118 demo`."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    assert shlex.split(tox["testenv:demo"]["commands"]) == ["iso15118", "demo"]


def run_cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None
) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as patch:
        if stdin is not None:
            patch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str) -> None:
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["exi"],
        ["nope"],
        ["exi", "decode", "8098"],  # no --schema
        ["exi", "decode", "--schema", "iso2"],  # no HEX
        ["exi", "encode"],
        ["exi", "decode", "--schema", "iso2", "--bogus", "8098"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert out == ""
    assert "usage: iso15118" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["exi", "decode", "--help"], capsys)
    assert code == 0
    assert "--fragment" in out


@pytest.mark.parametrize("hex_arg", ["80zz", "809", "80 9", "0x8098", "", "  "])
def test_bad_hex_is_an_input_error(hex_arg: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["exi", "decode", "--schema", "iso2", hex_arg], capsys)
    assert code == 2
    assert out == ""
    assert_one_error_line(err)


def test_bad_hex_on_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["exi", "decode", "--schema", "iso2", "-"], capsys, stdin="80 9g\n")
    assert code == 2
    assert_one_error_line(err)


@pytest.mark.parametrize("stdin", ["", "{", "[1, 2]", '"V2G_Message"'])
def test_bad_json_is_an_input_error(stdin: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["exi", "encode", "--schema", "iso2"], capsys, stdin=stdin)
    assert code == 2
    assert out == ""
    assert_one_error_line(err)


def test_read_hex_ignores_whitespace(monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_hex(" 80 98\n02\t3c ") == bytes.fromhex("8098023c")
    monkeypatch.setattr(sys, "stdin", io.StringIO("8098\n023c\n"))
    assert read_hex("-") == bytes.fromhex("8098023c")


def test_python_m_reports_errors_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "iso15118", "exi", "decode", "--schema", "iso2", "xyz"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr)


# The tests below need the codec and its generated ISO 15118-2 grammar.


@pytest.fixture
def exi() -> ModuleType:
    pytest.importorskip("exi_schemas.iso2")
    return importlib.import_module("iso15118.exi")


@pytest.mark.usefixtures("exi")
def test_demo_decodes_the_captured_current_demand_req(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(demo_argv(), capsys)
    assert (code, err) == (0, "")
    message = json.loads(out)["V2G_Message"]
    assert message["Header"]["SessionID"] == "f0e5cb4e8e5fa0b5"
    assert message["Body"]["CurrentDemandReq"]["DC_EVStatus"]["EVRESSSOC"] == 93


@pytest.mark.usefixtures("exi")
def test_decode_encode_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    argv = demo_argv()
    code, decoded, _ = run_cli(argv, capsys)
    assert code == 0
    code, encoded, err = run_cli(["exi", "encode", "--schema", "iso2"], capsys, stdin=decoded)
    assert (code, err) == (0, "")
    assert encoded == argv[-1] + "\n"


@pytest.mark.usefixtures("exi")
def test_decode_xml(capsys: pytest.CaptureFixture[str]) -> None:
    *options, hex_arg = demo_argv()
    code, out, _ = run_cli([*options, "--xml", hex_arg], capsys)
    assert code == 0
    assert "CurrentDemandReq" in out


def test_schemas_lists_every_schema(exi: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["exi", "schemas"], capsys)
    assert code == 0
    assert tuple(out.split()) == exi.SCHEMAS


@pytest.mark.usefixtures("exi")
def test_unknown_schema_and_undecodable_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["exi", "decode", "--schema", "iso3", "8098"], capsys)
    assert code == 2
    assert_one_error_line(err)
    truncated = demo_argv()[-1][:20]
    for data in ("ff", truncated):
        code, _, err = run_cli(["exi", "decode", "--schema", "iso2", data], capsys)
        assert code == 2
        assert_one_error_line(err)
