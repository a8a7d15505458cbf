"""TLS and SASL on real Kafka connections: what works, and what fails with one clear error.

Two kinds of broker (see README, "Security"):
- the embedded Tansu itself with `--authentication`: its SASL gate is real, but Tansu 0.6 cannot
  store a user, so it refuses every login; and it has no working TLS listener;
- `SecureFront` (tests/integration/security_front.py) in front of a real Tansu: TLS termination
  and Kafka's own SASL exchange (PLAIN, SCRAM-SHA-256/512), so the success paths, wrong
  passwords and untrusted certificates are exercised with aiokafka and a Faust worker.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.broker import EmbeddedBroker, create_topics_async, free_port, tansu_binary
from streams.errors import BrokerAuthenticationError
from streams.security import KafkaSecurity, check_access
from streams.settings import Settings
from streams.summarizer.service import SummarizerService
from streams.topics import TopicNames
from tests.integration.conftest import REPO_ROOT
from tests.integration.fleet import worker_command
from tests.integration.security_front import SecureFront
from tests.tls_certs import TlsFiles, make_tls_files

USER, PASSWORD = "budget-worker", "s3cret-for-tests"
PROMPT = 5.0  # seconds within which a refusal must be reported


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1, a client certificate, an unrelated CA."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def server_context(tls: TlsFiles, require_client_certificate: bool = False) -> ssl.SSLContext:
    """The front's TLS context (optionally mutual TLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.server_cert, tls.server_key)
    if require_client_certificate:
        context.load_verify_locations(tls.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[Callable[..., SecureFront]]:
    """Factory: a SecureFront (TLS and/or SASL) before a fresh Tansu that advertises the front."""
    started: list[tuple[SecureFront, EmbeddedBroker]] = []

    def make(**front_options: object) -> SecureFront:
        front = SecureFront(**front_options).start()  # type: ignore[arg-type]
        tansu = EmbeddedBroker(advertised=front.bootstrap, log_path=tmp_path / "tansu.log")
        started.append((front, tansu.start()))
        front.upstream = ("127.0.0.1", tansu.port)
        return front

    yield make
    for front, tansu in started:
        front.stop()  # first: Tansu waits a moment for connections still open when it stops
        tansu.stop()


def security(**fields: object) -> KafkaSecurity:
    """Security from Settings fields, as every process builds it."""
    return KafkaSecurity.from_settings(Settings(**fields))  # type: ignore[arg-type]


async def round_trip(bootstrap: str, options: dict[str, object], topic: str) -> list[bytes]:
    """Create the topic, produce two records and read them back, all with `options`."""
    await create_topics_async(bootstrap, [topic], partitions=1, options=options)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **options
    )
    await producer.start()
    await consumer.start()
    received: list[bytes] = []
    try:
        for value in (b"turn-1", b"turn-2"):
            await producer.send_and_wait(topic, value, key=b"session")
        async with asyncio.timeout(20):
            while len(received) < 2:
                batches = await consumer.getmany(timeout_ms=200)
                received += [m.value for records in batches.values() for m in records]
    finally:
        await consumer.stop()
        await producer.stop()
    return received


async def refusal(bootstrap: str, options: dict[str, object]) -> str:
    """The error creating a topic gets (what the worker and the summarizer do first), in time."""
    started = time.monotonic()
    with pytest.raises(BrokerAuthenticationError) as raised:
        async with asyncio.timeout(3 * PROMPT):  # a hang fails here instead of stalling CI
            await create_topics_async(bootstrap, ["never-created"], options=options)
    assert time.monotonic() - started < PROMPT, "the refusal took too long to be reported"
    return str(raised.value)


# TLS ------------------------------------------------------------------------------------


async def test_tls_with_the_right_ca_produces_and_consumes(secure_broker, tls, unique_name):
    front = secure_broker(ssl_context=server_context(tls))
    options = security(security_protocol="SSL", ssl_cafile=tls.ca).aiokafka_kwargs()
    assert await round_trip(front.bootstrap, options, unique_name("tls")) == [b"turn-1", b"turn-2"]


async def test_tls_with_a_wrong_ca_is_one_clear_error(secure_broker, tls):
    front = secure_broker(ssl_context=server_context(tls))
    options = security(security_protocol="SSL", ssl_cafile=tls.other_ca).aiokafka_kwargs()
    message = await refusal(front.bootstrap, options)
    assert "TLS certificate is not trusted" in message
    assert "certificate verify failed" in message and "TOKENBUDGET_SSL_CAFILE" in message


async def test_plaintext_against_a_tls_listener_and_tls_against_a_plain_one(secure_broker, tls):
    front = secure_broker(ssl_context=server_context(tls))
    message = await refusal(front.bootstrap, {"security_protocol": "PLAINTEXT"})
    assert "closed the connection" in message and "PLAINTEXT" in message
    with EmbeddedBroker() as plain:  # a plaintext listener never answers a TLS hello
        options = security(security_protocol="SSL", ssl_cafile=tls.ca).aiokafka_kwargs()
        with pytest.raises(BrokerAuthenticationError, match="did not complete a TLS handshake"):
            await check_access(plain.bootstrap, options, timeout=1.0)


async def test_a_broker_that_is_down_is_not_reported_as_a_security_problem(tls):
    options = security(security_protocol="SSL", ssl_cafile=tls.ca).aiokafka_kwargs()
    async with asyncio.timeout(PROMPT):
        await check_access(f"127.0.0.1:{free_port()},localhost:{free_port()}", options)


async def test_mutual_tls_needs_the_client_certificate(secure_broker, tls, unique_name):
    front = secure_broker(ssl_context=server_context(tls, require_client_certificate=True))
    with_certificate = security(
        security_protocol="SSL",
        ssl_cafile=tls.ca,
        ssl_certfile=tls.client_cert,
        ssl_keyfile=tls.client_key,
    ).aiokafka_kwargs()
    assert await round_trip(front.bootstrap, with_certificate, unique_name("mtls"))
    without = security(security_protocol="SSL", ssl_cafile=tls.ca).aiokafka_kwargs()
    message = await refusal(front.bootstrap, without)
    assert "client certificate" in message and "TOKENBUDGET_SSL_CERTFILE" in message


# SASL -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_ssl_with_the_right_password(secure_broker, tls, unique_name, mechanism):
    front = secure_broker(ssl_context=server_context(tls), users={USER: PASSWORD})
    options = security(
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password=PASSWORD,
        ssl_cafile=tls.ca,
    ).aiokafka_kwargs()
    assert await round_trip(front.bootstrap, options, unique_name("sasl")) == [b"turn-1", b"turn-2"]
    assert front.authenticated, "the front saw no SASL login"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_a_wrong_password_is_one_clear_error(secure_broker, mechanism):
    front = secure_broker(users={USER: PASSWORD})  # SASL_PLAINTEXT
    options = security(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password="not-the-password",
    ).aiokafka_kwargs()
    message = await refusal(front.bootstrap, options)
    assert f"refused the SASL {mechanism} login of user '{USER}'" in message
    assert "Authentication failed" in message and "TOKENBUDGET_SASL_PASSWORD" in message
    assert "not-the-password" not in message


# The embedded Tansu's own authentication ---------------------------------------------------


@pytest.fixture(scope="module")
def tansu_with_authentication(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """Tansu started with --authentication."""
    log_path = tmp_path_factory.mktemp("tansu-auth") / "tansu.log"
    with EmbeddedBroker(authentication=True, log_path=log_path) as running:
        yield running


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512"},
            f"refused the SASL SCRAM-SHA-512 login of user '{USER}'",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256"},
            f"refused the SASL SCRAM-SHA-256 login of user '{USER}'",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
            "closed the connection during the SASL PLAIN handshake",
        ),
        ({"security_protocol": "PLAINTEXT"}, "requires authentication"),
    ],
    ids=["scram-sha-512", "scram-sha-256", "plain", "no-sasl"],
)
async def test_tansu_authentication_refuses_with_one_clear_error(
    tansu_with_authentication, options, expected
):
    if options["security_protocol"] != "PLAINTEXT":
        options = {**options, "sasl_plain_username": USER, "sasl_plain_password": PASSWORD}
    assert expected in await refusal(tansu_with_authentication.bootstrap, options)


def test_tansu_0_6_cannot_add_a_user_to_an_authenticating_broker(tansu_with_authentication):
    # Canary for the README's "Security" limits: when it fails, Tansu can hold users and the
    # embedded broker could offer SCRAM for real.
    done = subprocess.run(
        [str(tansu_binary()), "user", "create", "--broker",
         f"tcp://{tansu_with_authentication.bootstrap}", USER, PASSWORD],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0, "tansu user create worked: update README 'Security'"


def test_tansu_0_6_cannot_take_a_tls_certificate_and_key(tls):
    # Canary too: 0.6 declares --cert and --key as conflicting, so no TLS listener can start.
    listener = f"tcp://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [str(tansu_binary()), "broker", "--listener-url", listener, "--cert",
         str(tls.server_cert), "--key", str(tls.server_key)],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert "cannot be used with" in done.stderr, "Tansu takes --cert/--key: update the README"


# The worker process ---------------------------------------------------------------------


def worker_environment(tls: TlsFiles, password_file: Path, mechanism: str) -> dict[str, str]:
    """TOKENBUDGET_* variables for SASL_SSL, the password in a file, as in a container."""
    return {
        "TOKENBUDGET_SECURITY_PROTOCOL": "SASL_SSL",
        "TOKENBUDGET_SASL_MECHANISM": mechanism,
        "TOKENBUDGET_SASL_USERNAME": USER,
        "TOKENBUDGET_SASL_PASSWORD_FILE": str(password_file),
        "TOKENBUDGET_SSL_CAFILE": str(tls.ca),
    }


def test_a_worker_with_a_wrong_password_exits_at_once_saying_why(secure_broker, tls, tmp_path):
    front = secure_broker(ssl_context=server_context(tls), users={USER: PASSWORD})
    wrong = tmp_path / "password"
    wrong.write_text("an-old-password\n")
    argv = [sys.executable, "-m", "streams", "worker", "--bootstrap", front.bootstrap,
            "--data-dir", str(tmp_path / "data"), "--no-scoring"]  # fmt: skip
    env = {**os.environ, **worker_environment(tls, wrong, "SCRAM-SHA-256")}
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"refused the SASL SCRAM-SHA-256 login of user '{USER}'" in done.stderr
    assert "an-old-password" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


async def dead_letter_keys(
    bootstrap: str,
    options: dict,
    topic: str,
    topics: TopicNames,
    process: asyncio.Task[None] | None = None,
) -> list[bytes]:
    """Send a record that is not Avro to `topic` (key `s1`) and read the dead letter back, all
    over the given TLS/SASL options: the keys of the first dead letters that arrive."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
    consumer = AIOKafkaConsumer(
        topics.dead_letters, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **options
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"not avro", key=b"s1")
        async with asyncio.timeout(30):
            while not (batches := await consumer.getmany(timeout_ms=200)):
                assert process is None or not process.done(), process
        return [r.key for records in batches.values() for r in records]
    finally:
        await consumer.stop()
        await producer.stop()


def test_a_worker_runs_over_sasl_ssl(secure_broker, tls, tmp_path, faust_worker, unique_name):
    front = secure_broker(ssl_context=server_context(tls), users={USER: PASSWORD})
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    topics = TopicNames(unique_name("sec") + ".")
    faust_worker(
        "streams",
        name="secure-budget",
        command=worker_command(front.bootstrap, topics, topics.prefix + "worker", 2),
        env=worker_environment(tls, password, "SCRAM-SHA-512"),
        ready_timeout=40,
    )
    # A record the worker cannot decode comes back as a dead letter: the worker consumed and
    # produced over SASL_SSL, and so did we.
    options = security(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password_file=password,
        ssl_cafile=tls.ca,
    ).aiokafka_kwargs()

    keys = asyncio.run(dead_letter_keys(front.bootstrap, options, topics.turns, topics))
    assert keys == [b"s1"]
    assert set(front.authenticated) == {"ScramServer"}


class NoBackend:
    """A summarizer backend never asked for anything in this test."""

    name = "none"

    async def summarize(self, request: object, counter: object) -> str:
        raise AssertionError("no summary was requested")


async def test_the_summarizer_consumes_and_produces_over_sasl_ssl(secure_broker, tls, unique_name):
    front = secure_broker(ssl_context=server_context(tls), users={USER: PASSWORD})
    prefix = unique_name("sum") + "."
    settings = Settings(  # type: ignore[call-arg]
        bootstrap=front.bootstrap,
        topic_prefix=prefix,
        summarizer_group=prefix + "summarizer",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username=USER,
        sasl_password=PASSWORD,
        ssl_cafile=tls.ca,
    )
    topics = TopicNames(prefix)
    options = KafkaSecurity.from_settings(settings).aiokafka_kwargs()
    await create_topics_async(front.bootstrap, topics.all(), options=options)
    stop = asyncio.Event()
    service = asyncio.create_task(SummarizerService(settings, NoBackend()).run(stop))
    try:
        # A command it cannot decode comes back as a dead letter: it read and wrote over TLS+SASL.
        keys = await dead_letter_keys(front.bootstrap, options, topics.commands, topics, service)
        assert keys == [b"s1"]
    finally:
        stop.set()
        await asyncio.wait_for(service, 10)
