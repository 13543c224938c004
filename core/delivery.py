"""POST a webhook body to a checked ``Target`` (SPEC §6).

The connection goes to an address that ``urlguard.check_url`` checked, never to a
fresh DNS answer, while TLS verifies the certificate for the URL's host name. No
redirect is followed. Header values are never logged: they hold signatures.

An attempt has one absolute deadline for connecting, TLS, sending and reading the
answer together: a socket timeout alone bounds each read, so a receiver that
trickles its answer a byte at a time would hold the attempt for as long as it likes.
"""

import http.client
import io
import socket
import ssl
import time
from dataclasses import dataclass

from .urlguard import Target

# The receiver's answer only matters by its status; reading a little of the body
# lets the connection end cleanly without letting a receiver flood the worker.
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "fusion-billing-webhooks/1"


@dataclass(frozen=True)
class Result:
    """Outcome of one attempt: an HTTP status, or the error that prevented one."""

    status_code: int | None
    error: str | None
    duration_ms: int


def is_success(status: int | None) -> bool:
    """True for a 2xx status (a 3xx is a failure: redirects are not followed).

    >>> is_success(204), is_success(302), is_success(None)
    (True, False, False)
    """
    return status is not None and 200 <= status < 300


class _Deadline:
    """A point in time (monotonic clock) after which the attempt is over."""

    def __init__(self, seconds: float):
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; raise TimeoutError once there are none."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError("delivery deadline reached")
        return left


class _DeadlineSocket:
    """The parts of a socket that http.client uses, each blocking call bounded by
    the time left before the deadline instead of a fresh timeout."""

    def __init__(self, sock: socket.socket, deadline: _Deadline):
        self._sock = sock
        self._deadline = deadline
        # http.client closes the connection's socket as soon as the answer says
        # "Connection: close", then reads the body from the file it made of
        # it: as with a real socket, the last of the two closes it.
        self._users = 1

    def _arm(self):
        self._sock.settimeout(self._deadline.remaining())

    def sendall(self, data):
        # SSLSocket.sendall applies the timeout to each chunk: loop here instead.
        view = memoryview(data).cast("B")
        while view:
            self._arm()
            view = view[self._sock.send(view) :]

    def recv_into(self, buffer) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode="rb"):
        assert mode == "rb", mode
        self._users += 1
        return io.BufferedReader(_DeadlineReader(self))

    def close(self):
        self._users -= 1
        if not self._users:
            self._sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket):
        super().__init__()
        self._sock = sock

    def readable(self):
        return True

    def readinto(self, buffer):
        return self._sock.recv_into(buffer)

    def close(self):
        if not self.closed:
            self._sock.close()
        super().close()


class _PinnedHTTPSConnection(http.client.HTTPConnection):
    """HTTPS to a given address, with the Host header and TLS name of the URL,
    within the attempt's deadline."""

    default_port = 443  # so the Host header omits ":443", as for HTTPSConnection

    def __init__(
        self,
        target: Target,
        address: str,
        deadline: _Deadline,
        context: ssl.SSLContext,
    ):
        super().__init__(target.host, target.port)
        self._address = address
        self._deadline = deadline
        self._context = context

    def connect(self):
        raw = socket.create_connection(
            (self._address, self.port), self._deadline.remaining()
        )
        try:
            # The handshake is bounded as a whole by the socket's timeout.
            raw.settimeout(self._deadline.remaining())
            tls = self._context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise
        self.sock = _DeadlineSocket(tls, self._deadline)


def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> Result:
    """Send ``body`` as-is; never raises for network, TLS or HTTP errors.

    ``timeout`` (seconds) bounds the whole attempt: connecting (to every address
    tried), TLS, sending and reading the answer. The checked addresses are tried in
    order until one accepts the TCP connection.
    """
    context = ssl_context or ssl.create_default_context()
    request_headers = {"User-Agent": USER_AGENT, **headers}
    started = time.monotonic()
    deadline = _Deadline(timeout)
    error = "no address to connect to"
    for address in target.addresses:
        connection = _PinnedHTTPSConnection(target, address, deadline, context)
        try:
            try:
                connection.connect()
            except (ssl.SSLError, TimeoutError) as exc:
                # The deadline is spent (connect waits for all of it), or the
                # receiver's TLS is wrong: another address would not help.
                error = _describe(exc)
                break
            except OSError as exc:
                error = f"{_describe(exc)} ({address})"
                continue  # this address is unreachable: try the next one
            connection.request(
                "POST", target.path_and_query, body=body, headers=request_headers
            )
            with connection.getresponse() as response:
                response.read(MAX_RESPONSE_BYTES)
            return Result(response.status, None, _elapsed_ms(started))
        except (OSError, http.client.HTTPException) as exc:
            error = _describe(exc)
            break
        finally:
            connection.close()
    return Result(None, error, _elapsed_ms(started))


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _describe(exc: OSError | http.client.HTTPException) -> str:
    """Return a short, header-free error text for the back office."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate error: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the receiver"
    if isinstance(exc, http.client.HTTPException):
        return f"invalid HTTP response ({type(exc).__name__})"
    return f"network error: {exc.strerror or exc}"
