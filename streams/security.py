"""TLS and SASL for every Kafka connection, from one frozen value built from `Settings`.

The worker (Faust), the summarizer and topic creation (aiokafka) and the client SDK all take
their security from here, so one set of `TOKENBUDGET_*` variables secures every connection.
Settings that cannot work fail at start with an error naming the variables to fix; a broker that
refuses the connection's TLS or SASL gets one clear error (`check_access`), not aiokafka's
"Unable to bootstrap" with the cause buried in a log line.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.errors import BrokerAuthenticationError, SecuritySettingsError

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT
    from pydantic import SecretStr

    from streams.settings import Settings

__all__ = [
    "MECHANISMS",
    "PROTOCOLS",
    "SECURITY_OPTIONS",
    "KafkaSecurity",
    "check_access",
    "client_options",
    "read_secret_file",
]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: The aiokafka client arguments that concern security (what `check_access` looks at).
SECURITY_OPTIONS = frozenset(
    {
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_oauth_token_provider",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
    }
)
_PASSWORD_VARS = "TOKENBUDGET_SASL_PASSWORD or TOKENBUDGET_SASL_PASSWORD_FILE"
_TLS_FILES = {"cafile": "SSL_CAFILE", "certfile": "SSL_CERTFILE", "keyfile": "SSL_KEYFILE"}


@dataclass(frozen=True, repr=False)
class KafkaSecurity:
    """How to reach the brokers: protocol, SASL credentials, TLS files; checked when built."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "PLAIN"
    username: str | None = None
    password: SecretStr | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True
    _ssl_context: ssl.SSLContext | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        protocol = self.protocol.strip().upper()
        mechanism = self.mechanism.strip().upper().replace("_", "-")
        object.__setattr__(self, "protocol", protocol)
        object.__setattr__(self, "mechanism", mechanism)
        if protocol not in PROTOCOLS:
            raise SecuritySettingsError(
                f"TOKENBUDGET_SECURITY_PROTOCOL is {self.protocol!r}; expected one of "
                f"{', '.join(PROTOCOLS)}"
            )
        self._check_sasl()
        self._check_tls()
        if self.uses_tls:
            object.__setattr__(self, "_ssl_context", self._build_ssl_context())

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """The security of `settings`, reading the password file now (at start)."""
        from pydantic import SecretStr

        password = settings.sasl_password
        if settings.sasl_password_file is not None:
            if password is not None:
                raise SecuritySettingsError(
                    f"set {_PASSWORD_VARS}, not both: which one is meant is not clear"
                )
            password = SecretStr(read_secret_file(settings.sasl_password_file))
        return cls(
            protocol=settings.security_protocol,
            mechanism=settings.sasl_mechanism,
            username=settings.sasl_username or None,
            password=password,
            cafile=settings.ssl_cafile,
            certfile=settings.ssl_certfile,
            keyfile=settings.ssl_keyfile,
            check_hostname=settings.ssl_check_hostname,
        )

    @property
    def uses_sasl(self) -> bool:
        """True when connections authenticate with SASL."""
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        """True when connections are encrypted with TLS."""
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every client shares (None without TLS)."""
        return self._ssl_context

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient.

        The dict holds the password in clear (aiokafka needs it so): never log it.
        """
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            options["ssl_context"] = self._ssl_context
        if self.uses_sasl:
            assert self.password is not None
            options["sasl_mechanism"] = self.mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password.get_secret_value()
        return options

    def faust_credentials(self) -> CredentialsT | None:
        """The same, as `faust.App(broker_credentials=...)` takes it (None: plaintext)."""
        from faust.auth import SASLCredentials, SSLCredentials

        if self.uses_sasl:
            assert self.password is not None
            return SASLCredentials(
                username=self.username,
                password=self.password.get_secret_value(),
                ssl_context=self._ssl_context,  # None → SASL_PLAINTEXT, else SASL_SSL
                mechanism=self.mechanism,
            )
        if self.uses_tls:
            return SSLCredentials(self._ssl_context)
        return None

    def redacted(self) -> str:
        """A description fit for logs: everything that matters except the password."""
        parts = [f"protocol={self.protocol}"]
        if self.uses_sasl:
            parts += [f"mechanism={self.mechanism}", f"username={self.username!r}", "password=***"]
        if self.uses_tls:
            parts += [f"{name}={str(getattr(self, name))!r}" for name in _TLS_FILES]
            parts.append(f"check_hostname={self.check_hostname}")
        return f"KafkaSecurity({', '.join(parts)})"

    __repr__ = redacted
    __str__ = redacted

    def _check_sasl(self) -> None:
        if self.uses_sasl:
            if self.mechanism not in MECHANISMS:
                raise SecuritySettingsError(
                    f"TOKENBUDGET_SASL_MECHANISM is {self.mechanism!r}; expected one of "
                    f"{', '.join(MECHANISMS)}"
                )
            needs = f"TOKENBUDGET_SECURITY_PROTOCOL={self.protocol} needs"
            if not self.username:
                raise SecuritySettingsError(f"{needs} a user name: set TOKENBUDGET_SASL_USERNAME")
            if self.password is None or not self.password.get_secret_value():
                raise SecuritySettingsError(f"{needs} a password: set {_PASSWORD_VARS}")
        elif self.username or self.password is not None:
            variable = "TOKENBUDGET_SASL_USERNAME" if self.username else _PASSWORD_VARS
            raise SecuritySettingsError(
                f"{variable} is set but TOKENBUDGET_SECURITY_PROTOCOL is {self.protocol}, so no "
                "credentials would be sent: use SASL_SSL (or SASL_PLAINTEXT)"
            )

    def _check_tls(self) -> None:
        for name, variable in _TLS_FILES.items():
            path = getattr(self, name)
            if path is None:
                continue
            if not self.uses_tls:
                raise SecuritySettingsError(
                    f"TOKENBUDGET_{variable} is set but TOKENBUDGET_SECURITY_PROTOCOL is "
                    f"{self.protocol}, which does not use TLS: use SSL or SASL_SSL"
                )
            if not Path(path).is_file():
                raise SecuritySettingsError(f"TOKENBUDGET_{variable}: no such file {path}")
        if self.keyfile is not None and self.certfile is None:
            raise SecuritySettingsError(
                "TOKENBUDGET_SSL_KEYFILE is set without TOKENBUDGET_SSL_CERTFILE (the client "
                "certificate it belongs to)"
            )

    def _build_ssl_context(self) -> ssl.SSLContext:
        from aiokafka.helpers import create_ssl_context

        try:
            context = create_ssl_context(
                cafile=self.cafile, certfile=self.certfile, keyfile=self.keyfile
            )
        except (ssl.SSLError, OSError, ValueError) as error:
            files = ", ".join(
                f"TOKENBUDGET_{variable}={getattr(self, name)}"
                for name, variable in _TLS_FILES.items()
                if getattr(self, name) is not None
            )
            raise SecuritySettingsError(f"cannot load the TLS files ({files}): {error}") from error
        context.check_hostname = self.check_hostname
        return context


def read_secret_file(path: Path) -> str:
    """A secret from a file (Docker/Kubernetes secrets); one trailing newline is dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise SecuritySettingsError(
            f"TOKENBUDGET_SASL_PASSWORD_FILE: cannot read {path}: {reason}"
        ) from error
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise SecuritySettingsError(f"TOKENBUDGET_SASL_PASSWORD_FILE: {path} is empty")
    return secret


def client_options(settings: Settings | None = None) -> dict[str, Any]:
    """aiokafka keyword arguments (TLS, SASL) for any producer, consumer or admin client.

    `AIOKafkaProducer(bootstrap_servers=..., **client_options())`; the settings default to the
    process's (`TOKENBUDGET_*` environment variables).
    """
    if settings is None:
        from streams.settings import get_settings

        settings = get_settings()
    return KafkaSecurity.from_settings(settings).aiokafka_kwargs()


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    """(host, port) of each bootstrap server; a missing port is Kafka's 9092."""
    found = []
    for server in filter(None, (s.strip() for s in bootstrap.split(","))):
        server = server.removeprefix("kafka://")
        host, colon, port = server.rpartition(":")
        if not colon or not port.isdigit():
            host, port = server, "9092"
        found.append((host.strip("[]"), int(port)))
    return found


async def check_access(
    bootstrap: str, options: Mapping[str, Any] | None = None, timeout: float = 10.0
) -> None:
    """Raise `BrokerAuthenticationError` when a broker refuses these options' TLS or SASL.

    Connects to each bootstrap server as a client would (TLS, ApiVersions, SASL, one metadata
    request) and names the cause. A broker that is merely down or unreachable is not this
    function's business: it returns, and the client's own start reports that as usual.
    """
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaConnectionError
    from aiokafka.protocol.metadata import MetadataRequest

    settings = {k: v for k, v in (options or {}).items() if k in SECURITY_OPTIONS}
    protocol = str(settings.get("security_protocol", "PLAINTEXT"))
    context = settings.get("ssl_context") if protocol in ("SSL", "SASL_SSL") else None
    for host, port in _addresses(bootstrap):
        address = f"{host}:{port}"
        stage = "tcp"
        try:
            if context is not None:  # TLS alone first: asyncio aborts a stalled handshake cleanly
                async with asyncio.timeout(timeout):
                    _, probe = await asyncio.open_connection(host, port)
                probe.transport.abort()
                stage = "tls"
                _, probe = await asyncio.open_connection(
                    host, port, ssl=context, ssl_handshake_timeout=timeout
                )
                probe.transport.abort()
            stage = "connect"
            async with asyncio.timeout(timeout):
                conn = await create_conn(
                    host, port, request_timeout_ms=int(timeout * 1000), **settings
                )
                try:
                    stage = "request"
                    await conn.send(MetadataRequest([]))
                finally:
                    conn.close()
        except ConnectionRefusedError:
            continue  # down, not refusing us: the client's own start says so
        except (TimeoutError, ConnectionAbortedError) as error:
            if stage == "tls":  # a plaintext listener never answers a TLS hello
                raise _refused(address, protocol, settings, stage, error) from error
            continue  # slow or hung: not a security problem
        except (ssl.SSLError, KafkaConnectionError, ConnectionResetError) as error:
            raise _refused(address, protocol, settings, stage, error) from error
        except OSError:
            continue  # unreachable host or unknown name: not a security problem
        except (KeyError, ValueError) as error:  # aiokafka's SCRAM client on an error answer
            raise _refused(address, protocol, settings, stage, error) from error
        except Exception as error:  # aiokafka's broker errors (SaslAuthenticationFailed, ...)
            if type(error).__module__.startswith("aiokafka"):
                raise _refused(address, protocol, settings, stage, error) from error
            raise


def _refused(
    address: str, protocol: str, settings: Mapping[str, Any], stage: str, error: BaseException
) -> BrokerAuthenticationError:
    """One sentence saying what the broker refused and which settings to look at."""
    mechanism = settings.get("sasl_mechanism", "PLAIN")
    user = settings.get("sasl_plain_username")
    sasl = protocol.startswith("SASL_")
    name = type(error).__name__
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = (
            f"{address}'s TLS certificate is not trusted (certificate verify failed: "
            f"{error.verify_message}): "
            "TOKENBUDGET_SSL_CAFILE must name the CA that signed it"
        )
        if "hostname" in str(error.verify_message).lower():
            reason += (
                " (or the certificate does not name this host: TOKENBUDGET_SSL_CHECK_HOSTNAME)"
            )
    elif isinstance(error, ssl.SSLError):
        reason = (
            f"the TLS handshake with {address} failed ({error.reason or error}): "
            "is it a TLS listener?"
        )
    elif stage == "tls" and isinstance(error, TimeoutError | ConnectionAbortedError):
        reason = (
            f"{address} did not complete a TLS handshake: is it a TLS listener? "
            f"(TOKENBUDGET_SECURITY_PROTOCOL is {protocol})"
        )
    elif name == "UnsupportedSaslMechanismError":
        reason = f"{address} does not offer SASL {mechanism} (TOKENBUDGET_SASL_MECHANISM): {error}"
    elif sasl and (name == "SaslAuthenticationFailed" or isinstance(error, KeyError | ValueError)):
        detail = getattr(error, "args", ("",))[0] if name == "SaslAuthenticationFailed" else ""
        reason = (
            f"{address} refused the SASL {mechanism} login of user {user!r}"
            + (f" ({detail})" if detail else "")
            + ": check TOKENBUDGET_SASL_USERNAME and TOKENBUDGET_SASL_PASSWORD(_FILE)"
        )
    elif sasl and stage == "connect":
        reason = (
            f"{address} closed the connection during the SASL {mechanism} handshake: it may not "
            "offer that mechanism (TOKENBUDGET_SASL_MECHANISM) or not expect SASL"
        )
    elif not sasl and stage == "request":
        reason = (
            f"{address} answered but closed the connection at the first request: it requires "
            f"authentication, and TOKENBUDGET_SECURITY_PROTOCOL is {protocol} (use SASL_SSL or "
            "SASL_PLAINTEXT with TOKENBUDGET_SASL_* credentials)"
        )
    elif protocol == "SSL" and stage == "connect":
        reason = (
            f"{address} closed the connection after the TLS handshake: it may require a client "
            "certificate (TOKENBUDGET_SSL_CERTFILE, TOKENBUDGET_SSL_KEYFILE) or SASL "
            "(TOKENBUDGET_SECURITY_PROTOCOL=SASL_SSL)"
        )
    else:
        reason = (
            f"{address} closed the connection ({error}): it may expect TLS or SASL, and "
            f"TOKENBUDGET_SECURITY_PROTOCOL is {protocol}"
        )
    return BrokerAuthenticationError(f"cannot use the Kafka broker: {reason}", address=address)
