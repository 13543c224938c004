import re
import socket

import pytest

from core import delivery, urlguard

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

# Fake DNS: tests never look a name up for real.
DNS = {
    "example.com": [PUBLIC_V4],
    "v6.example.com": [PUBLIC_V6],
    "dual.example.com": [PUBLIC_V4, PUBLIC_V6],
    "xn--bcher-kva.example": [PUBLIC_V4],  # bücher.example
    "xn--fa-hia.de": [PUBLIC_V4],  # faß.de in IDNA 2008 ("fass.de" in IDNA 2003)
    "fass.de": ["10.9.9.9"],  # another domain: must never be what faß.de means
    "site-local.example.com": ["fec0::5"],
    "translated.example.com": ["::ffff:0:a00:5"],
    "localhost": ["127.0.0.1", "::1"],
    "internal.example.com": ["10.0.0.5"],
    "office.example.com": ["192.168.1.20"],
    "docker.example.com": ["172.17.0.2"],
    "cgnat.example.com": ["100.64.3.4"],
    "metadata.example.com": ["169.254.169.254"],
    "multicast.example.com": ["239.1.2.3"],
    "zero.example.com": ["0.0.0.0"],
    "mixed.example.com": [PUBLIC_V4, "127.0.0.1"],
    "ula.example.com": ["fd12:3456::1"],
    "mapped.example.com": ["::ffff:10.1.2.3"],
    "nat64.example.com": ["64:ff9b::a9fe:a9fe"],
    "nat64-public.example.com": ["64:ff9b::5db8:d822"],  # 93.184.216.34
    "garbage.example.com": ["not-an-ip"],
    "hooks.test": ["127.0.0.1"],
}


def fake_resolver(host, port):
    try:
        return DNS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


ALLOWED = frozenset({"hooks.test"})

SAFE = [
    # url, expected host, port, path_and_query, addresses
    ("https://example.com", "example.com", 443, "/", (PUBLIC_V4,)),
    ("https://example.com/hooks/fusion", "example.com", 443, "/hooks/fusion", None),
    ("HTTPS://EXAMPLE.COM/Path", "example.com", 443, "/Path", None),
    ("https://example.com./x", "example.com", 443, "/x", None),
    ("https://example.com:8443/x?a=1&b=2", "example.com", 8443, "/x?a=1&b=2", None),
    ("https://example.com/x#fragment", "example.com", 443, "/x", None),
    ("https://example.com/caf%C3%A9", "example.com", 443, "/caf%C3%A9", None),
    ("https://example.com/café?q=ü", "example.com", 443, "/caf%C3%A9?q=%C3%BC", None),
    ("https://example.com:443", "example.com", 443, "/", None),
    ("https://v6.example.com/", "v6.example.com", 443, "/", (PUBLIC_V6,)),
    (
        "https://dual.example.com/",
        "dual.example.com",
        443,
        "/",
        (PUBLIC_V4, PUBLIC_V6),
    ),
    ("https://bücher.example/", "xn--bcher-kva.example", 443, "/", (PUBLIC_V4,)),
    # IDNA 2008 / UTS 46, as browsers: "ß" stays a letter of its own.
    ("https://faß.de/", "xn--fa-hia.de", 443, "/", (PUBLIC_V4,)),
    ("https://FAß.DE/", "xn--fa-hia.de", 443, "/", (PUBLIC_V4,)),
    ("https://\uff46\uff41ß.de/", "xn--fa-hia.de", 443, "/", (PUBLIC_V4,)),
    ("https://xn--fa-hia.de/", "xn--fa-hia.de", 443, "/", (PUBLIC_V4,)),
    # IPv4-translated (SIIT) form of a public address: judged by 8.8.8.8.
    ("https://[::ffff:0:808:808]/", "::ffff:0:808:808", 443, "/", None),
    ("https://8.8.8.8/", "8.8.8.8", 443, "/", ("8.8.8.8",)),
    ("https://134744072/", "8.8.8.8", 443, "/", ("8.8.8.8",)),  # decimal 8.8.8.8
    ("https://0x8.0x8.0x8.0x8/", "8.8.8.8", 443, "/", ("8.8.8.8",)),
    ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111", 443, "/", None),
    ("https://[::ffff:8.8.8.8]/", "::ffff:808:808", 443, "/", None),
    ("https://nat64-public.example.com/", "nat64-public.example.com", 443, "/", None),
    ("https://[2002:808:808::1]/", "2002:808:808::1", 443, "/", None),  # 6to4
    # The allow-list lifts the address rule for its exact host names only.
    ("https://hooks.test/in", "hooks.test", 443, "/in", ("127.0.0.1",)),
    ("https://HOOKS.test:9443/in", "hooks.test", 9443, "/in", ("127.0.0.1",)),
]

UNSAFE = [
    # url, words the admin reads in the error
    ("http://example.com/", "must use https"),
    ("ftp://example.com/", "must use https"),
    ("//example.com/", "must use https"),
    ("example.com/hook", "must use https"),
    ("http://hooks.test/", "must use https"),  # the allow-list keeps the https rule
    ("https://", "must include a host"),
    ("https:///path", "must include a host"),
    ("https://user@example.com/", "user name or password"),
    ("https://user:pass@example.com/", "user name or password"),
    ("https://example.com\\@127.0.0.1/", "user name or password"),
    ("https://example.com:0/", "invalid port"),
    ("https://example.com:99999/", "malformed"),
    ("https://example.com:http/", "malformed"),
    ("https://exa mple.com/", "spaces or control characters"),
    ("https://example.com/\r\nX-Injected: 1", "spaces or control characters"),
    ("https://exam\tple.com/", "spaces or control characters"),
    ("https://%31%32%37.0.0.1/", "not a valid IPv4 address"),  # percent-encoded
    ("https://ex%61mple.com/", "not a valid host name"),
    ("https://exa_mple..com/", "not a valid host name"),
    ("https://-example.com/", "not a valid host name"),
    ("https://[not-v6]/", "malformed"),
    ("https://nowhere.example/", "does not resolve"),
    ("https://garbage.example.com/", "invalid address"),
    ("https://localhost/", "loopback address 127.0.0.1"),
    ("https://127.0.0.1/", "loopback address 127.0.0.1"),
    ("https://127.0.0.1.:443/", "loopback address 127.0.0.1"),
    ("https://2130706433/", "loopback address 127.0.0.1"),  # decimal
    ("https://0177.0.0.1/", "loopback address 127.0.0.1"),  # octal
    ("https://017700000001/", "loopback address 127.0.0.1"),  # octal, one part
    ("https://0x7f.1/", "loopback address 127.0.0.1"),  # hex, short
    ("https://0x7F000001/", "loopback address 127.0.0.1"),  # hex, one part
    ("https://127.1/", "loopback address 127.0.0.1"),  # short form
    ("https://127.000.000.001/", "loopback address 127.0.0.1"),
    # Full-width digits, and ideographic full stops: IDNA maps both to ASCII.
    ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "loopback address 127.0.0.1"),
    ("https://127\u30020\u30020\u30021/", "loopback address 127.0.0.1"),
    ("https://0/", "unspecified address 0.0.0.0"),
    ("https://0.0.0.0/", "unspecified address 0.0.0.0"),
    ("https://1.2.3.4.5/", "not a valid IPv4 address"),
    ("https://256.1.1.1/", "not a valid IPv4 address"),
    ("https://0x/", "not a valid IPv4 address"),
    ("https://09.1.1.1/", "not a valid IPv4 address"),  # 9 is no octal digit
    ("https://example.123/", "not a valid IPv4 address"),
    ("https://internal.example.com/", "private address 10.0.0.5"),
    ("https://office.example.com/", "private address 192.168.1.20"),
    ("https://docker.example.com/", "private address 172.17.0.2"),
    ("https://cgnat.example.com/", "shared (carrier-grade NAT) address 100.64.3.4"),
    ("https://metadata.example.com/", "link-local address 169.254.169.254"),
    ("https://169.254.169.254/latest/meta-data/", "link-local address"),
    ("https://multicast.example.com/", "multicast address 239.1.2.3"),
    ("https://zero.example.com/", "unspecified address 0.0.0.0"),
    ("https://mixed.example.com/", "loopback address 127.0.0.1"),  # any bad one
    ("https://10.0.0.5:8443/", "private address 10.0.0.5"),
    ("https://192.0.2.1/", "private address 192.0.2.1"),  # documentation range
    ("https://240.0.0.1/", "reserved address 240.0.0.1"),
    ("https://255.255.255.255/", "address 255.255.255.255"),
    ("https://224.0.0.1/", "multicast address 224.0.0.1"),
    ("https://[::1]/", "loopback address ::1"),
    ("https://[::]/", "unspecified address ::"),
    ("https://[fe80::1]/", "link-local address fe80::1"),
    ("https://[fe80::1%25eth0]/", "link-local address"),
    ("https://[fd00::1]/", "private address fd00::1"),
    ("https://ula.example.com/", "private address fd12:3456::1"),
    ("https://[ff02::1]/", "multicast address ff02::1"),
    ("https://[2001:db8::1]/", "private address 2001:db8::1"),
    ("https://[::ffff:127.0.0.1]/", "stands for a loopback address 127.0.0.1"),
    ("https://[::ffff:7f00:1]/", "stands for a loopback address 127.0.0.1"),
    ("https://mapped.example.com/", "stands for a private address 10.1.2.3"),
    ("https://[64:ff9b::7f00:1]/", "stands for a loopback address 127.0.0.1"),
    ("https://nat64.example.com/", "stands for a link-local address 169.254.169.254"),
    ("https://[2002:7f00:1::1]/", "tunnels to a loopback address 127.0.0.1"),  # 6to4
    ("https://[2002:a00:5::]/", "tunnels to a private address 10.0.0.5"),
    # Teredo: server 65.54.227.120, client (bits inverted) 192.168.1.1
    ("https://[2001:0:4136:e378:8000:63bf:3f57:fefe]/", "tunnels to a private"),
    ("https://[::127.0.0.1]/", "reserved address ::7f00:1"),  # IPv4-compatible
    # IPv4-translated (SIIT) forms stand for their IPv4 address.
    ("https://[::ffff:0:7f00:1]/", "stands for a loopback address 127.0.0.1"),
    ("https://translated.example.com/", "stands for a private address 10.0.0.5"),
    # Local-use NAT64 reaches a network only its operator knows.
    ("https://[64:ff9b:1::7f00:1]/", "local-use NAT64 address 64:ff9b:1::7f00:1"),
    ("https://[64:ff9b:1::808:808]/", "local-use NAT64 address"),
    # Deprecated site-local: "global" to Python, routed to nobody on the Internet.
    ("https://[fec0::1]/", "deprecated site-local address fec0::1"),
    ("https://[feff:ffff::1]/", "deprecated site-local address"),
    ("https://site-local.example.com/", "deprecated site-local address fec0::5"),
    # Not a host name in IDNA 2008 (a label opening with a combining mark, emoji).
    ("https://\u0300example.com/", "not a valid host name"),
    ("https://\U0001f600.example.com/", "not a valid host name"),
]


def test_tables_are_large():
    assert len(SAFE) + len(UNSAFE) >= 40
    assert len(UNSAFE) >= 40


@pytest.mark.parametrize(("url", "host", "port", "path", "addresses"), SAFE)
def test_safe_urls(url, host, port, path, addresses):
    target = urlguard.check_url(url, resolver=fake_resolver, allowed_hosts=ALLOWED)
    assert target.scheme == "https"
    assert target.host == host
    assert target.port == port
    assert target.path_and_query == path
    if addresses is not None:
        assert target.addresses == addresses
    assert target.addresses


@pytest.mark.parametrize(("url", "message"), UNSAFE)
def test_unsafe_urls(url, message):
    with pytest.raises(urlguard.UnsafeURL, match=re.escape(message)):
        urlguard.check_url(url, resolver=fake_resolver, allowed_hosts=ALLOWED)


def test_error_messages_read_well():
    with pytest.raises(urlguard.UnsafeURL) as error:
        urlguard.check_url("https://internal.example.com/x", resolver=fake_resolver)
    assert str(error.value) == (
        "host internal.example.com resolves to a private address 10.0.0.5"
    )
    with pytest.raises(urlguard.UnsafeURL) as error:
        urlguard.check_url("https://0177.0.0.1/", resolver=fake_resolver)
    assert str(error.value) == "webhook URL points to a loopback address 127.0.0.1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "webhook URL is empty"),
        (None, "webhook URL is empty"),
        (b"https://example.com/", "webhook URL is empty"),
        (
            "https://example.com/" + "x" * 2029,
            "webhook URL is longer than 2048 characters",
        ),
        ("https://exa mple.com/", "webhook URL contains spaces or control characters"),
        ("https://example.com:0/", "webhook URL has an invalid port 0"),
        ("http://example.com/", "webhook URL must use https"),
        (
            "https://user@example.com/",
            "webhook URL must not contain a user name or password",
        ),
        ("https:///path", "webhook URL must include a host name"),
        (
            "https://[1.2.3.4]/",
            "webhook URL is malformed: An IPv4 address cannot be in brackets",
        ),
        # An "IPvFuture" literal passes urlsplit but is no IPv6 address.
        ("https://[v1.x]/", "'v1.x' is not a valid IPv6 address"),
        ("https://-x.example/", "host name '-x.example' is not a valid host name"),
        ("https://nowhere.example/", "host nowhere.example does not resolve"),
    ],
)
def test_error_messages_in_full(url, message):
    with pytest.raises(urlguard.UnsafeURL) as error:
        urlguard.check_url(url, resolver=fake_resolver)
    assert str(error.value) == message


def test_url_length_limit_is_inclusive():
    prefix = "https://example.com/"
    longest = prefix + "x" * (urlguard.MAX_URL_LENGTH - len(prefix))
    assert len(longest) == urlguard.MAX_URL_LENGTH == 2048
    target = urlguard.check_url(longest, resolver=fake_resolver)
    assert target.path_and_query == longest[len(prefix) - 1 :]
    with pytest.raises(urlguard.UnsafeURL, match="longer than 2048"):
        urlguard.check_url(longest + "x", resolver=fake_resolver)


def test_host_name_length_limit_is_253():
    def any_name(host, port):
        return [PUBLIC_V4]

    longest = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(longest) == 253
    assert urlguard.check_url(f"https://{longest}/", resolver=any_name).host == longest
    # A trailing dot is not counted, as in DNS.
    assert urlguard.check_url(f"https://{longest}./", resolver=any_name).host == longest
    too_long = ".".join(["a" * 63] * 3 + ["b" * 62])
    assert len(too_long) == 254
    with pytest.raises(urlguard.UnsafeURL, match="not a valid host name"):
        urlguard.check_url(f"https://{too_long}/", resolver=any_name)


def test_unsafe_url_is_a_value_error():
    with pytest.raises(ValueError):
        urlguard.check_url("http://example.com", resolver=fake_resolver)


def test_allow_list_is_exact_and_case_insensitive():
    allowed = frozenset({"Internal.Example.com"})
    target = urlguard.check_url(
        "https://INTERNAL.example.com/", resolver=fake_resolver, allowed_hosts=allowed
    )
    assert target.addresses == ("10.0.0.5",)
    for url in ("https://office.example.com/", "https://sub.internal.example.com/"):
        with pytest.raises(urlguard.UnsafeURL):
            urlguard.check_url(url, resolver=fake_resolver, allowed_hosts=allowed)


def test_allow_listed_host_must_still_resolve():
    with pytest.raises(urlguard.UnsafeURL, match="does not resolve"):
        urlguard.check_url(
            "https://gone.test/",
            resolver=fake_resolver,
            allowed_hosts=frozenset({"gone.test"}),
        )


def test_ip_literals_are_not_looked_up():
    def no_dns(host, port):
        raise AssertionError(f"looked up {host}")

    assert urlguard.check_url("https://134744072/", resolver=no_dns).addresses == (
        "8.8.8.8",
    )


def test_resolver_gets_the_normalized_host_and_port():
    calls = []

    def recording(host, port):
        calls.append((host, port))
        return [PUBLIC_V4]

    urlguard.check_url("https://Bücher.Example.:8443/", resolver=recording)
    assert calls == [("xn--bcher-kva.example", 8443)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, frozenset()),
        ("", frozenset()),
        (" , ,", frozenset()),
        ("hooks.test", frozenset({"hooks.test"})),
        (" Hooks.Test ,API.internal, ", frozenset({"hooks.test", "api.internal"})),
    ],
)
def test_parse_allowed_hosts(value, expected):
    assert urlguard.parse_allowed_hosts(value) == expected


def test_default_resolver_uses_getaddrinfo(monkeypatch):
    # The real signature: a resolver that dropped or mangled "type" would get one
    # answer per socket type from the real getaddrinfo, or a TypeError.
    def fake_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: PLR0917
        assert (host, port) == ("example.com", 443)
        assert (family, type, proto, flags) == (0, socket.SOCK_STREAM, 0, 0)
        stream = socket.SOCK_STREAM
        return [
            (socket.AF_INET, stream, 6, "", (PUBLIC_V4, port)),
            (socket.AF_INET6, stream, 6, "", (PUBLIC_V6, port, 0, 0)),
            (socket.AF_INET, stream, 6, "", (PUBLIC_V4, port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert urlguard.default_resolver("example.com", 443) == [PUBLIC_V4, PUBLIC_V6]


def test_dns_rebinding_cannot_swap_the_checked_address(monkeypatch):
    """The address checked is the address connected to; DNS is asked only once."""
    answers = iter([[PUBLIC_V4], ["127.0.0.1"]])
    lookups = []

    def rebinding_resolver(host, port):
        lookups.append(host)
        return next(answers)

    target = urlguard.check_url(
        "https://rebind.example.com/hook", resolver=rebinding_resolver
    )
    assert target.addresses == (PUBLIC_V4,)
    assert lookups == ["rebind.example.com"]

    # A second check (as at the next send) sees the rebound answer and refuses.
    with pytest.raises(urlguard.UnsafeURL, match=r"loopback address 127\.0\.0\.1"):
        urlguard.check_url("https://rebind.example.com/", resolver=rebinding_resolver)

    # Delivery connects to the checked address and never resolves again.
    connected = []

    def fake_create_connection(address, *args, **kwargs):
        connected.append(address)
        raise ConnectionRefusedError

    def no_dns(*args, **kwargs):
        raise AssertionError("delivery must not resolve host names")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "create_connection", fake_create_connection)
    result = delivery.post(target, b"{}", {}, timeout=1)
    assert connected == [(PUBLIC_V4, 443)]
    assert result.status_code is None
    assert "connection refused" in result.error


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://app.example/hooks?token=s3cret", "https://app.example/hooks"),
        ("https://app.example:8443/h#frag", "https://app.example:8443/h"),
        ("https://user:pw@app.example/h", "https://app.example/h"),
        ("https://app.example", "https://app.example"),
    ],
)
def test_without_query_drops_what_may_hold_secrets(url, shown):
    assert urlguard.without_query(url) == shown
