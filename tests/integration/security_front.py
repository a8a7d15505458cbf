"""A TLS and SASL front for the embedded broker, so tests can exercise what Tansu 0.6 cannot.

Tansu 0.6 has no working TLS listener and cannot store SASL users (README, "Security"). This
front listens on loopback, terminates TLS (`ssl_context`) and/or authenticates clients the way
Apache Kafka does (SaslHandshake + SaslAuthenticate; PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, with
Kafka's error codes and messages), then pipes bytes to a real Tansu behind it. Tansu must
advertise the front's address (`EmbeddedBroker(advertised=front.bootstrap)`), so every client
connection, bootstrap or not, goes through the front.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import hmac
import os
import ssl
import struct
import threading
from collections.abc import Mapping
from typing import Self

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
SCRAM_ITERATIONS = 4096


class ScramServer:
    """The server side of one SCRAM exchange (RFC 5802), against plain-text test passwords."""

    def __init__(self, mechanism: str, users: Mapping[str, str]) -> None:
        self.hash = SCRAM_HASHES[mechanism]
        self.mechanism = mechanism
        self.users = users
        self.stage = 0
        self.salted = b""
        self.auth_message = ""
        self.known = False

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self.hash).digest()

    def step(self, data: bytes) -> tuple[bytes, bool]:
        """(reply, done); raises PermissionError when the client is not who it claims to be."""
        text = data.decode()
        if self.stage == 0:
            self.stage = 1
            bare = text.split(",", 2)[2]
            fields = dict(item.split("=", 1) for item in bare.split(","))
            user = fields["n"].replace("=2C", ",").replace("=3D", "=")
            salt = os.urandom(16)
            # An unknown user still gets a challenge, so a client cannot probe for names.
            password = self.users.get(user, os.urandom(16).hex())
            self.known = user in self.users
            self.salted = hashlib.pbkdf2_hmac(self.hash, password.encode(), salt, SCRAM_ITERATIONS)
            nonce = fields["r"] + base64.b64encode(os.urandom(18)).decode()
            first = f"r={nonce},s={base64.b64encode(salt).decode()},i={SCRAM_ITERATIONS}"
            self.auth_message = f"{bare},{first}"
            return first.encode(), False
        without_proof, proof = text.rsplit(",p=", 1)
        self.auth_message += "," + without_proof
        client_key = self._hmac(self.salted, b"Client Key")
        stored_key = hashlib.new(self.hash, client_key).digest()
        signature = self._hmac(stored_key, self.auth_message.encode())
        claimed = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        if not self.known or hashlib.new(self.hash, claimed).digest() != stored_key:
            raise PermissionError(
                "Authentication failed during authentication due to invalid credentials "
                f"with SASL mechanism {self.mechanism}"
            )
        server_key = self._hmac(self.salted, b"Server Key")
        verifier = base64.b64encode(self._hmac(server_key, self.auth_message.encode()))
        return b"v=" + verifier, True


class PlainServer:
    """SASL PLAIN (RFC 4616): one message, authzid NUL user NUL password."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = users

    def step(self, data: bytes) -> tuple[bytes, bool]:
        """(empty reply, done) or PermissionError, as Kafka answers."""
        _authzid, user, password = data.decode().split("\0")
        if self.users.get(user) != password:
            raise PermissionError("Authentication failed: Invalid username or password")
        return b"", True


class SecureFront:
    """TLS and/or SASL in front of a plaintext broker; runs its own event loop in a thread."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        users: Mapping[str, str] | None = None,
        mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    ) -> None:
        self.ssl_context = ssl_context
        self.users = users
        self.mechanisms = mechanisms
        self.upstream: tuple[str, int] | None = None
        self.port = 0
        self.authenticated: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def bootstrap(self) -> str:
        """The address clients (and the broker's advertised listener) use."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Listen on a free loopback port (known once this returns)."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=10)
        return self

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close the listener and every connection, then the loop's thread."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.upstream is not None, "set front.upstream to the broker's address first"
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            if self.users is None or await self._authenticate(reader, writer, up_reader, up_writer):
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # a client gone, or one that failed the TLS handshake: nothing to serve
        finally:
            for stream in (writer, up_writer):
                stream.close()

    async def _authenticate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> bool:
        """Serve requests until SASL succeeds (True) or fails, or another request comes (False)."""
        session: ScramServer | PlainServer | None = None
        while True:
            frame = await _read_frame(reader)
            api_key, version, correlation = struct.unpack(">hhi", frame[:8])
            (client_id_size,) = struct.unpack(">h", frame[8:10])
            body = frame[10 + max(client_id_size, 0) :]
            header = struct.pack(">i", correlation)
            if api_key == API_VERSIONS:  # the broker's own answer
                up_writer.write(struct.pack(">i", len(frame)) + frame)
                await _send(writer, (await _read_frame(up_reader))[4:], header)
            elif api_key == SASL_HANDSHAKE:
                (size,) = struct.unpack(">h", body[:2])
                mechanism = body[2 : 2 + size].decode()
                known = mechanism in self.mechanisms
                if known:
                    session = (
                        PlainServer(self.users or {})
                        if mechanism == "PLAIN"
                        else ScramServer(mechanism, self.users or {})
                    )
                names = b"".join(struct.pack(">h", len(m)) + m.encode() for m in self.mechanisms)
                error = 0 if known else UNSUPPORTED_SASL_MECHANISM
                await _send(writer, struct.pack(">hi", error, len(self.mechanisms)) + names, header)
                if not known:
                    return False
            elif api_key == SASL_AUTHENTICATE and session is not None:
                (size,) = struct.unpack(">i", body[:4])
                refused: PermissionError | None = None
                try:
                    reply, done = session.step(body[4 : 4 + size])
                    answer = struct.pack(">hh", 0, -1) + struct.pack(">i", len(reply)) + reply
                except PermissionError as error:
                    refused, done, message = error, False, str(error).encode()
                    answer = struct.pack(">hh", SASL_AUTHENTICATION_FAILED, len(message))
                    answer += message + struct.pack(">i", 0)
                if version >= 1:
                    answer += struct.pack(">q", 0)  # session_lifetime_ms
                await _send(writer, answer, header)
                if refused is not None:
                    return False
                if done:
                    self.authenticated.append(type(session).__name__)
                    return True
            else:
                return False  # any other request before authenticating: Kafka closes too


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


async def _send(writer: asyncio.StreamWriter, body: bytes, header: bytes) -> None:
    writer.write(struct.pack(">i", len(header) + len(body)) + header + body)
    await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy bytes until either side closes."""
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    finally:
        sink.close()
