"""Delivery against real HTTPS servers on 127.0.0.1, with a test CA from trustme."""

import contextlib
import http.client
import http.server
import socket
import ssl
import threading
import time

import pytest
import standardwebhooks
import trustme

from core import delivery, signing, urlguard

HOST = "hooks.test"
SECRET = signing.generate_secret()
BODY = signing.canonical_json({"type": "invoice.created", "customer": "Zoë"})


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records each request, then answers according to the path."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.server.received.append((self.path, dict(self.headers), body))
        if self.path == "/slow":
            self.server.release.wait(timeout=5)
        if self.path.startswith("/trickle"):
            self._trickle(float(self.path.partition("=")[2]))
            return
        if self.path == "/flood":
            self._flood()
            return
        if self.path == "/garbage":
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
            return
        status, extra = {
            "/fail": (500, {}),
            "/redirect": (302, {"Location": f"https://{HOST}/elsewhere"}),
            "/large": (200, {}),
        }.get(self.path, (204, {}))
        payload = b"x" * (1024 * 1024) if self.path == "/large" else b""
        if self.path == "/close":
            status, extra, payload = 200, {"Connection": "close"}, b"ok"
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stops reading early
            self.wfile.write(payload)

    def _trickle(self, pause):
        """Answer one byte at a time, each within any per-read timeout."""
        answer = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
        with contextlib.suppress(OSError):  # the client gave up
            for byte in answer:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if self.server.release.wait(pause):
                    return

    def _flood(self):
        """A 204 whose body (announced as 1 GB) would come for ever."""
        self.send_response(200)
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        chunk = b"x" * 65536
        with contextlib.suppress(OSError):  # the client stopped reading
            for _ in range(10**9 // len(chunk)):
                if self.server.release.is_set():
                    return
                self.wfile.write(chunk)

    def log_message(self, *args):
        pass


class Server:
    def __init__(self, ca, cert_host):
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(cert_host).configure_cert(server_context)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        self.httpd.daemon_threads = True
        # Handshake in the handler thread, so a failed one cannot stall accept().
        self.httpd.socket = server_context.wrap_socket(
            self.httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.httpd.handle_error = lambda *args: None  # failed handshakes are expected
        self.httpd.received = []
        self.httpd.release = threading.Event()
        self.port = self.httpd.server_address[1]
        # A short poll interval keeps shutdown() (each teardown) fast.
        threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True
        ).start()

    @property
    def received(self):
        return self.httpd.received

    def target(self, path="/hook"):
        return urlguard.check_url(
            f"https://{HOST}:{self.port}{path}",
            resolver=lambda host, port: ["127.0.0.1"],
            allowed_hosts=frozenset({HOST}),
        )

    def stop(self):
        self.httpd.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def client_context(ca):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def server(ca):
    running = Server(ca, HOST)
    yield running
    running.stop()


@pytest.fixture
def wrong_name_server(ca):
    running = Server(ca, "other.test")
    yield running
    running.stop()


def _signed_headers():
    return signing.signature_headers(
        "evt-1", "invoice.created", BODY, [SECRET], int(time.time())
    )


def test_receiver_gets_exact_body_and_headers(server, client_context):
    headers = _signed_headers()
    result = delivery.post(
        server.target("/hook?source=fusion"),
        BODY,
        headers,
        timeout=5,
        ssl_context=client_context,
    )
    assert result.status_code == 204
    assert result.error is None
    assert delivery.is_success(result.status_code)
    assert result.duration_ms >= 0

    [(path, received_headers, received_body)] = server.received
    assert path == "/hook?source=fusion"
    assert received_body == BODY
    for name, value in headers.items():
        assert received_headers[name] == value
    assert received_headers["Host"] == f"{HOST}:{server.port}"
    assert received_headers["User-Agent"] == "fusion-billing-webhooks/1"
    assert received_headers["Content-Length"] == str(len(BODY))
    assert signing.verify_fusion_signature(
        received_body,
        received_headers["X-Fusion-Signature"],
        received_headers["X-Fusion-Timestamp"],
        SECRET,
    )


def test_receiver_verifies_with_standardwebhooks(server, client_context):
    delivery.post(
        server.target(), BODY, _signed_headers(), 5, ssl_context=client_context
    )
    [(_, received_headers, received_body)] = server.received
    payload = standardwebhooks.Webhook(SECRET).verify(received_body, received_headers)
    assert payload == {"type": "invoice.created", "customer": "Zoë"}


def test_server_error_is_a_failed_attempt(server, client_context):
    result = delivery.post(
        server.target("/fail"), BODY, {}, timeout=5, ssl_context=client_context
    )
    assert result.status_code == 500
    assert result.error is None
    assert not delivery.is_success(result.status_code)


def test_redirect_is_not_followed(server, client_context):
    result = delivery.post(
        server.target("/redirect"), BODY, {}, timeout=5, ssl_context=client_context
    )
    assert result.status_code == 302
    assert not delivery.is_success(result.status_code)
    assert [path for path, _, _ in server.received] == ["/redirect"]


def test_answer_that_closes_the_connection_counts(server, client_context):
    result = delivery.post(
        server.target("/close"), BODY, {}, timeout=5, ssl_context=client_context
    )
    assert (result.status_code, result.error) == (200, None)


def test_large_response_is_read_only_partly(server, client_context):
    result = delivery.post(
        server.target("/large"), BODY, {}, timeout=5, ssl_context=client_context
    )
    assert result.status_code == 200


def test_endless_response_body_is_not_waited_for(server, client_context):
    started = time.monotonic()
    result = delivery.post(
        server.target("/flood"), BODY, {}, timeout=2, ssl_context=client_context
    )
    assert (result.status_code, result.error) == (200, None)
    assert time.monotonic() - started < 1.5


def test_slow_receiver_times_out(server, client_context):
    started = time.monotonic()
    result = delivery.post(
        server.target("/slow"), BODY, {}, timeout=0.5, ssl_context=client_context
    )
    elapsed_ms = (time.monotonic() - started) * 1000
    assert result.status_code is None
    assert result.error == "timeout"
    assert elapsed_ms < 3000
    # The failed attempt's duration is measured too, in milliseconds.
    assert 500 <= result.duration_ms <= elapsed_ms + 1


def _assert_cut_after_half_a_second(port, client_context):
    """POST to 127.0.0.1:port with a 0.5 s budget: a timeout, right on time."""
    target = urlguard.Target("https", HOST, port, "/", ("127.0.0.1",))
    started = time.monotonic()
    result = delivery.post(target, BODY, {}, timeout=0.5, ssl_context=client_context)
    elapsed = time.monotonic() - started
    assert (result.status_code, result.error) == (None, "timeout")
    assert 0.5 <= elapsed < 1


def test_connect_that_never_completes_is_cut_at_the_deadline(client_context):
    """A listener whose accept queue is full: the SYN is never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1):  # the queue
            _assert_cut_after_half_a_second(port, client_context)


def test_answer_that_is_not_http_is_reported(server, client_context):
    result = delivery.post(
        server.target("/garbage"), BODY, {}, timeout=5, ssl_context=client_context
    )
    assert (result.status_code, result.error) == (
        None,
        "invalid HTTP response (BadStatusLine)",
    )


def test_receiver_without_tls_is_a_tls_error(client_context):
    """A plain-HTTP receiver: the error names OpenSSL's reason, not its repr."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        target = urlguard.Target(
            "https", HOST, listener.getsockname()[1], "/", ("127.0.0.1",)
        )

        def answer_in_clear():
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 20)

        thread = threading.Thread(target=answer_in_clear, daemon=True)
        thread.start()
        result = delivery.post(target, BODY, {}, timeout=5, ssl_context=client_context)
        thread.join(5)
    assert result.status_code is None
    reason = result.error.removeprefix("TLS error: ")
    assert reason != result.error
    assert reason.isupper() or "_" in reason, result.error
    assert "[SSL" not in reason


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (ConnectionResetError(104, "Connection reset by peer"),
         "connection reset by the receiver"),
        (OSError(113, "No route to host"), "network error: No route to host"),
        (OSError("no errno"), "network error: no errno"),
        (http.client.LineTooLong("header line"),
         "invalid HTTP response (LineTooLong)"),
    ],
)  # fmt: skip
def test_error_texts(exc, text):
    assert delivery._describe(exc) == text


def test_deadline_with_no_time_left_is_over(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(delivery.time, "monotonic", lambda: now[0])
    deadline = delivery._Deadline(2)
    now[0] = 101.5
    assert deadline.remaining() == 0.5
    now[0] = 102.0
    with pytest.raises(TimeoutError, match=r"^delivery deadline reached$"):
        deadline.remaining()
    assert delivery._elapsed_ms(100.0) == 2000
    now[0] = 100.0 + 1.2345
    assert delivery._elapsed_ms(100.0) == 1234


def test_trickling_receiver_is_cut_at_the_deadline(server, client_context):
    """Each byte comes well within any read timeout; the answer as a whole never
    comes within the deadline."""
    started = time.monotonic()
    result = delivery.post(
        server.target("/trickle?pause=0.1"),
        BODY,
        {},
        timeout=1,
        ssl_context=client_context,
    )
    elapsed = time.monotonic() - started
    assert (result.status_code, result.error) == (None, "timeout")
    assert 1 <= elapsed < 1.5
    assert len(server.received) == 1


def test_trickled_answer_within_the_deadline_counts(server, client_context):
    result = delivery.post(
        server.target("/trickle?pause=0.001"),
        BODY,
        {},
        timeout=5,
        ssl_context=client_context,
    )
    assert result.status_code == 204


def test_silent_tls_handshake_is_cut_at_the_deadline(client_context):
    """A receiver that accepts the connection and never speaks TLS."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        _assert_cut_after_half_a_second(listener.getsockname()[1], client_context)


def test_certificate_for_another_host_is_a_tls_error(wrong_name_server, client_context):
    result = delivery.post(
        wrong_name_server.target(), BODY, {}, timeout=5, ssl_context=client_context
    )
    assert result.status_code is None
    assert result.error.startswith("TLS certificate error")
    assert "hostname" in result.error.lower()
    assert wrong_name_server.received == []


def test_untrusted_certificate_is_a_tls_error(server):
    # The default context trusts the system CAs only, not the test CA.
    result = delivery.post(server.target(), BODY, {}, timeout=5)
    assert result.status_code is None
    assert result.error.startswith("TLS certificate error")
    assert server.received == []


def test_next_checked_address_is_tried_when_one_refuses(server, client_context):
    # Nothing listens on 127.0.0.2 at this port: refused, then 127.0.0.1 answers.
    target = server.target()
    target = urlguard.Target(
        target.scheme,
        target.host,
        target.port,
        target.path_and_query,
        ("127.0.0.2", "127.0.0.1"),
    )
    result = delivery.post(target, BODY, {}, timeout=5, ssl_context=client_context)
    assert result.status_code == 204
    assert len(server.received) == 1


def test_refused_connection_is_reported_not_raised(client_context):
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = urlguard.Target("https", HOST, port, "/", ("127.0.0.1",))
    result = delivery.post(target, BODY, {}, timeout=5, ssl_context=client_context)
    assert result.status_code is None
    assert result.error == "connection refused (127.0.0.1)"


def test_no_address_is_reported():
    target = urlguard.Target("https", HOST, 443, "/", ())
    result = delivery.post(target, BODY, {}, timeout=1)
    assert (result.status_code, result.error) == (None, "no address to connect to")


@pytest.mark.parametrize(
    ("status", "success"),
    [(None, False), (199, False), (200, True), (202, True), (299, True),
     (300, False), (301, False), (410, False), (500, False)],
)  # fmt: skip
def test_is_success(status, success):
    assert delivery.is_success(status) is success
