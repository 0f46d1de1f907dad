"""The SECC's YAML configuration: the example file loads; bad files give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from iso15118.cli import main
from iso15118.sap import AppProtocol
from iso15118.yamlconf import ConfigError
from secc.config_file import read_secc_config

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "secc.yaml"
SITE = EXAMPLE.parent / "site.yaml"


def test_example_file_loads() -> None:
    config = read_secc_config(EXAMPLE)
    assert config.server.protocol.protocols == (AppProtocol.ISO2, AppProtocol.DIN)
    assert config.server.tcp_port == 15118
    assert config.evse_class == "secc.simulated:SimulatedEVSE"
    assert config.backend_options["free_charging"] is True
    assert (config.billing.meter_save_interval, config.billing.meter_save_wh) == (10.0, 100)


def test_example_file_checks_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = EXAMPLE.read_text().replace("./secc-data", str(tmp_path / "data"))
    path = tmp_path / "secc.yaml"
    path.write_text(text)
    assert main(["secc", "run", "--config", str(path), "--check"]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("netwrok: {}\n", "unknown key: netwrok"),
        ("network: {tcp_port: 70000}\n", "network.tcp_port: 70000 is outside 0..65535"),
        ("network: {tls_policy: sometimes}\n", "network.tls_policy: 'sometimes' is not one of"),
        ("protocols: [iso3]\n", "unknown application protocol"),
        ("receipt_required: maybe\n", "receipt_required: expected true or false"),
        ("network: {tls_port: 1}\n", "tls_port needs tls"),
        ("tls: {private_key: k.pem}\n", "tls needs both"),
        ("evse: {class: nowhere}\n", None),
        ("evse: {}\nevses: [{}]\n", "or evses"),
        ("evses: []\n", "evses: give at least one EVSE"),
        ("evses: [{}, {}]\nnetwork: {tcp_port: 15118}\n", "two EVSEs listen on the same port"),
        ("evses: [{network: {bogus: 1}}]\n", "network: bogus"),
        ("evses: [3]\n", "]: expected a mapping"),
        ("site: {max_power: -5}\n", "site.max_power: expected watts"),
        ("billing: {meter_save_interval: 0}\n", "billing.meter_save_interval: must be > 0"),
        ("billing: {meter_save_wh: 0}\n", "billing.meter_save_wh: 0 is outside"),
        ("tariff: {id: t, currency: XXQ}\n", "currency"),
        ("- a list\n", "top level must be a mapping"),
        ("key: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str | None) -> None:
    path = tmp_path / "secc.yaml"
    extra = "" if text.startswith("-") else f"data_dir: {tmp_path / 'data'}\n"
    path.write_text(text + extra)
    if message is None:  # found only when the plug-in is loaded
        assert main(["secc", "run", "--config", str(path), "--check"]) == 2
        return
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("'", "'")):
        read_secc_config(path)


def test_site_example_loads() -> None:
    config = read_secc_config(SITE)
    assert len(config.evses) == 4
    assert [e.evse_options["evse_id"] for e in config.evses][-1] == "DE*ABC*E0000004*1"
    assert all(e.server.tcp_port == 0 for e in config.evses)
    assert config.site.max_power == 120000
    assert config.tariff is not None and config.tariff.currency == "EUR"
    assert config.server.protocol.tariff == config.tariff


def test_meter_save_settings_reach_the_station(tmp_path: Path) -> None:
    from secc.commands import build

    path = tmp_path / "secc.yaml"
    path.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        "network: {tcp_port: 0}\n"
        "billing: {meter_save_interval: 2.5, meter_save_wh: 20}\n"
    )
    station, store, _api = build(path)
    try:
        assert (station.meter_save_interval, station.meter_save_wh) == (2.5, 20)
    finally:
        store.close()


def test_each_evse_overrides_the_network_defaults(tmp_path: Path) -> None:
    path = tmp_path / "secc.yaml"
    path.write_text(
        "network: {host: '::1', tcp_port: 15118, max_connections: 2}\n"
        "evses:\n"
        "  - options: {evse_id: A}\n"
        "  - options: {evse_id: B}\n"
        "    network: {tcp_port: 15119}\n"
    )
    config = read_secc_config(path)
    assert [e.server.tcp_port for e in config.evses] == [15118, 15119]
    assert [e.server.max_connections for e in config.evses] == [2, 2]


def test_bad_file_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "secc.yaml"
    path.write_text("network: {bogus: 1}\n")
    assert main(["secc", "run", "--config", str(path)]) == 2
    assert "unknown key in network: bogus" in capsys.readouterr().err


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        read_secc_config(tmp_path / "absent.yaml")
