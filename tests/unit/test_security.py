"""Kafka TLS/SASL settings: parsing, validation with errors naming the variables, redaction."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import certifi
import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.cli import _security_flags, build_parser, main, settings_from_flags
from streams.errors import SecuritySettingsError, TokenBudgetError
from streams.security import KafkaSecurity, _addresses, client_options, read_secret_file
from streams.settings import Settings

PASSWORD = "correct-horse-battery-staple"
CA = Path(certifi.where())


def settings(**fields: object) -> Settings:
    """Settings from these fields only (the test environment's variables cannot leak in)."""
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_security_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("TOKENBUDGET_SASL", "TOKENBUDGET_SSL", "TOKENBUDGET_SECURITY")):
            monkeypatch.delenv(name)


def test_the_default_is_plaintext_everywhere() -> None:
    security = KafkaSecurity.from_settings(settings())
    assert security.aiokafka_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None
    assert security.ssl_context is None


def test_sasl_ssl_with_scram_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENBUDGET_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("TOKENBUDGET_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("TOKENBUDGET_SASL_USERNAME", "budget-worker")
    monkeypatch.setenv("TOKENBUDGET_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("TOKENBUDGET_SSL_CAFILE", str(CA))
    options = client_options(Settings())
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "budget-worker",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize(
    ("protocol", "cafile"),
    [("SASL_SSL", CA), ("SASL_PLAINTEXT", None), ("SSL", CA)],
)
def test_faust_gets_the_same_connection_settings_as_aiokafka(protocol: str, cafile: Path) -> None:
    sasl = {"sasl_username": "u", "sasl_password": PASSWORD} if protocol.startswith("SASL") else {}
    security = KafkaSecurity.from_settings(
        settings(
            security_protocol=protocol, sasl_mechanism="SCRAM-SHA-256", ssl_cafile=cafile, **sasl
        )
    )
    credentials = security.faust_credentials()
    assert isinstance(credentials, SASLCredentials if sasl else SSLCredentials)
    # What Faust's aiokafka driver makes of the credentials is exactly what our clients use.
    faust_options = credentials_to_aiokafka_auth(credentials)
    assert {k: v for k, v in faust_options.items() if v is not None} == security.aiokafka_kwargs()


def test_the_password_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")  # as `echo pw > file` and most secret mounts write it
    security = KafkaSecurity.from_settings(
        settings(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password_file=secret)
    )
    assert security.aiokafka_kwargs()["sasl_plain_password"] == PASSWORD
    assert read_secret_file(secret) == PASSWORD


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"security_protocol": "TLS"}, ["TOKENBUDGET_SECURITY_PROTOCOL", "SASL_SSL"]),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u"},
            ["TOKENBUDGET_SASL_MECHANISM", "SCRAM-SHA-512"],
        ),
        ({"security_protocol": "SASL_SSL"}, ["TOKENBUDGET_SASL_USERNAME"]),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u"},
            ["TOKENBUDGET_SASL_PASSWORD or TOKENBUDGET_SASL_PASSWORD_FILE"],
        ),
        (
            {"sasl_username": "u", "sasl_password": PASSWORD},
            ["TOKENBUDGET_SASL_USERNAME", "PLAINTEXT", "SASL_SSL"],
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_username": "u",
                "sasl_password": "p",
                "ssl_cafile": CA,
            },
            ["TOKENBUDGET_SSL_CAFILE", "SSL or SASL_SSL"],
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": Path("/nowhere/ca.pem")},
            ["TOKENBUDGET_SSL_CAFILE", "/nowhere/ca.pem"],
        ),
        (
            {"security_protocol": "SSL", "ssl_keyfile": CA},
            ["TOKENBUDGET_SSL_KEYFILE", "TOKENBUDGET_SSL_CERTFILE"],
        ),
    ],
)
def test_settings_that_cannot_work_fail_naming_the_variables(
    fields: dict[str, object], named: list[str]
) -> None:
    with pytest.raises(SecuritySettingsError) as raised:
        KafkaSecurity.from_settings(settings(**fields))
    for text in named:
        assert text in str(raised.value)
    assert isinstance(raised.value, TokenBudgetError) and not raised.value.retriable


def test_password_file_problems_are_clear(tmp_path: Path) -> None:
    base = {"security_protocol": "SASL_SSL", "sasl_username": "u"}
    missing = tmp_path / "absent"
    with pytest.raises(SecuritySettingsError, match=f"PASSWORD_FILE: cannot read {missing}"):
        KafkaSecurity.from_settings(settings(**base, sasl_password_file=missing))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecuritySettingsError, match="is empty"):
        KafkaSecurity.from_settings(settings(**base, sasl_password_file=empty))
    both = settings(**base, sasl_password=PASSWORD, sasl_password_file=empty)
    with pytest.raises(SecuritySettingsError, match="not both") as raised:
        KafkaSecurity.from_settings(both)
    assert PASSWORD not in str(raised.value)


def test_unreadable_tls_files_fail_at_start(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(SecuritySettingsError, match="cannot load the TLS files") as raised:
        KafkaSecurity(protocol="SSL", cafile=garbage)
    assert f"TOKENBUDGET_SSL_CAFILE={garbage}" in str(raised.value)


def test_hostname_checking_can_be_turned_off_but_the_chain_is_still_verified() -> None:
    security = KafkaSecurity(protocol="SSL", cafile=CA, check_hostname=False)
    assert security.ssl_context is not None
    assert security.ssl_context.check_hostname is False
    assert security.ssl_context.verify_mode is ssl.CERT_REQUIRED


def test_the_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    config = settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="budget-worker",
        sasl_password=PASSWORD,
        ssl_cafile=CA,
    )
    security = KafkaSecurity.from_settings(config)
    with caplog.at_level(logging.INFO):
        logging.getLogger("tokenbudget.test").info("kafka security: %s %r", security, security)
    shown = [str(security), repr(security), security.redacted(), caplog.text, repr(config)]
    shown.append(repr(security.faust_credentials()))
    for text in shown:
        assert PASSWORD not in text
    assert "username='budget-worker'" in security.redacted()
    assert "password=***" in security.redacted() and "SASL_SSL" in security.redacted()


def test_security_flags_override_the_environment_and_take_no_secret_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKENBUDGET_SECURITY_PROTOCOL", "SSL")
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    argv = ["worker", "--security-protocol", "sasl_plaintext", "--sasl-mechanism", "scram-sha-256",
            "--sasl-username", "u", "--sasl-password-file", str(secret)]  # fmt: skip
    args = build_parser().parse_args(argv)
    config = settings_from_flags(_security_flags(args))
    options = KafkaSecurity.from_settings(config).aiokafka_kwargs()
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_password"] == PASSWORD
    # A password on the command line is readable by every user of the machine (ps): refused,
    # and the refusal does not repeat it.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["summarizer", "--sasl-password", PASSWORD])
    error = capsys.readouterr().err
    assert "--sasl-password-file" in error and PASSWORD not in error


def test_the_worker_refuses_to_start_on_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["worker", "--security-protocol", "SASL_SSL", "--bootstrap", "127.0.0.1:1"])
    assert status == 2
    assert "TOKENBUDGET_SASL_USERNAME" in capsys.readouterr().err


def test_bootstrap_addresses_are_parsed_like_kafka_does() -> None:
    bootstrap = "kafka-1:9093, kafka://kafka-2:9094,kafka-3,[::1]:9095"
    assert _addresses(bootstrap) == [
        ("kafka-1", 9093),
        ("kafka-2", 9094),
        ("kafka-3", 9092),
        ("::1", 9095),
    ]
