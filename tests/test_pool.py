"""_kit.Pool and _kit.Connection on their own: a host keeps as many idle connections as it had in
use at once (bounded), a dead idle one is never handed out, a TLS one is reused, the TLS context
waits for the first https connection, and a reply is framed and its headers read as http.client
would, without the email package; a query string is written as urlencode writes it."""
import datetime
import http.client
import http.server
import io
import socket
import ssl
import threading
import urllib.parse

import pytest

from exchanges import _kit
from tests.fakes.okx import FakeOKX


def port(fake):
    return int(fake.url.rsplit(":", 1)[1])


def connected(pool, fake, count):
    """`count` connections taken at once (each connected to the fake), in use together."""
    taken = [pool.take("http", "127.0.0.1", port(fake), 5) for _ in range(count)]
    for conn, reused in taken:
        if not reused:
            conn.connect()
    return taken


def test_a_host_keeps_as_many_idle_connections_as_it_had_in_use():
    """32 robots signing at once: their 32 connections are kept and found again, none opened
    anew (a fixed pool of 8 closed 24 of them and opened 24 more: a TLS handshake each)."""
    pool = _kit.Pool()
    with FakeOKX() as fake:
        for conn, _ in connected(pool, fake, 32):
            pool.give_back("http", "127.0.0.1", port(fake), conn)
        again = connected(pool, fake, 32)
        assert all(reused for _, reused in again) and pool.opened == 32
        for conn, _ in again:
            pool.give_back("http", "127.0.0.1", port(fake), conn)
        pool.clear()


def test_idle_connections_are_bounded():
    pool = _kit.Pool(most=4)
    with FakeOKX() as fake:
        for conn, _ in connected(pool, fake, 10):
            pool.give_back("http", "127.0.0.1", port(fake), conn)
        assert len(pool.idle[("http", "127.0.0.1", port(fake))]) == 4
        pool.clear()


def test_a_connection_the_server_closed_is_not_handed_out():
    pool = _kit.Pool()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        conn, _ = pool.take("http", "127.0.0.1", port, 5)
        conn.connect()
        server_side, _ = listener.accept()
        pool.give_back("http", "127.0.0.1", port, conn)
        server_side.close()                      # the server hangs up the idle connection
        fresh, reused = pool.take("http", "127.0.0.1", port, 5)
        assert not reused and fresh is not conn and conn.sock is None
        pool.discard("http", "127.0.0.1", port, fresh)


def test_an_open_idle_connection_is_reused_with_its_timeout_back():
    pool = _kit.Pool()
    with FakeOKX() as fake:
        (conn, _), = connected(pool, fake, 1)
        pool.give_back("http", "127.0.0.1", port(fake), conn)
        again, reused = pool.take("http", "127.0.0.1", port(fake), 7)
        assert reused and again is conn and conn.sock.gettimeout() == 7
        pool.discard("http", "127.0.0.1", port(fake), conn)


def test_the_tls_context_is_made_for_the_first_https_connection():
    pool = _kit.Pool()
    pool.take("http", "127.0.0.1", 9, 5)
    assert pool._tls is None
    conn, _ = pool.take("https", "example.invalid", 443, 5)
    assert isinstance(pool._tls, ssl.SSLContext) and conn.tls is pool._tls
    assert pool.tls.verify_mode == ssl.CERT_REQUIRED and pool.tls.check_hostname


def reply(head, method="GET"):
    """(status, body, headers, will_close) as a Connection reads `head` (status line, headers,
    body), the same whether the head is in the reader's buffer, taken at once, or read a line at
    a time (a reader that cannot peek); an error, the same error either way."""
    outcomes = []
    for reader in (io.BufferedReader(io.BytesIO(head)), io.BytesIO(head)):
        conn = _kit.Connection("http", "127.0.0.1", 80, 5)
        conn.reader = reader
        try:
            outcomes.append(conn._reply(method))
        except Exception as error:
            outcomes.append(error)
    buffered, by_lines = outcomes
    if isinstance(buffered, Exception) or isinstance(by_lines, Exception):
        assert type(buffered) is type(by_lines), outcomes
        raise buffered
    seen = lambda status, body, headers, will_close: (status, body, dict(headers), headers.names, will_close)
    assert seen(*buffered) == seen(*by_lines)
    return buffered


def test_reply_headers_read_as_http_client_reads_them():
    status, body, headers, will_close = reply(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-MBX-USED-WEIGHT-1M: 12\r\n"
        b"X-Folded: one\r\n two\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\n{}")
    assert status == 200 and body == b"{}" and not will_close
    assert headers.get("x-mbx-used-weight-1m") == headers.get("X-MBX-USED-WEIGHT-1M") == "12"
    assert headers["x-folded"] == "one two" and headers.get("set-cookie") == "a=1"
    assert headers.get("absent") is None and "content-type" in headers
    assert headers.names == ["Content-Type", "X-MBX-USED-WEIGHT-1M", "X-Folded", "Set-Cookie", "Set-Cookie",
                             "Content-Length"]


@pytest.mark.parametrize("head, fields, body", [
    (b"HTTP/1.1 200 OK\r\n\r\nab\r\n\r\ncd", {}, b"ab\r\n\r\ncd"),          # no headers; a blank line in the body
    (b"HTTP/1.1 200 OK\nA: 1\nB:2 \n\nab", {"a": "1", "b": "2"}, b"ab"),         # lines ended by LF alone
    (b"HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\n\r\nab", {"a": "1", "b": "2"}, b"ab"),  # a mix
    (b"HTTP/1.1 200 OK\r\nA : x\ty \t\r\nNo colon\r\nB:\r\n\r\nab", {"a": "x\ty", "no colon": "", "b": ""},
     b"ab"),
    (b"HTTP/1.1 200 OK\r\nA: 1\r\n\t2\r\n 3\r\n\r\nab", {"a": "1 2 3"}, b"ab"),   # folded twice
])
def test_odd_reply_heads_read_alike_either_way(head, fields, body):
    status, got, headers, _ = reply(head)
    assert (status, dict(headers), got) == (200, fields, body)


def test_reply_framing_follows_rfc_9112():
    assert reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")[3]
    assert reply(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}")[3]
    assert not reply(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}")[3]
    assert reply(b"HTTP/1.1 200 OK\r\n\r\n{}")[1:4:2] == (b"{}", True)       # no length: up to the close
    chunked = reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\n{\"\r\nB\r\n"
                    b"a\": [1, 2]}\r\n0\r\nX-Trailer: t\r\n\r\nHTTP/1.1 ...")
    assert chunked[1] == b'{"a": [1, 2]}' and not chunked[3]
    assert reply(b"HTTP/1.1 204 No Content\r\n\r\n")[1] == b""
    assert reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method="HEAD")[1] == b""
    assert reply(b"HTTP/1.1 100 Continue\r\nX: y\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n"
                 b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")[:2] == (200, b"1")


@pytest.mark.parametrize("head, error", [
    (b"", http.client.RemoteDisconnected),                                     # a dropped keep-alive
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}", http.client.IncompleteRead),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}", http.client.IncompleteRead),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n", http.client.IncompleteRead),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}", http.client.HTTPException),
    (b"<html>hello</html>\r\n", http.client.BadStatusLine),
    (b"HTTP/2 200\r\n\r\n", http.client.BadStatusLine),
])
def test_a_broken_reply_raises_http_clients_own_error(head, error):
    """Api._send tells these apart: a dropped keep-alive is asked again (a read), the rest are
    network errors (an order's: an ambiguous outcome)."""
    with pytest.raises(error):
        reply(head)


def test_a_control_character_in_a_target_or_header_is_refused_before_sending():
    conn = _kit.Connection("http", "127.0.0.1", 9, 5)              # nothing listens: nothing is sent
    for target, headers in [("/a\r\nX: 1", {}), ("/a b", {}), ("/a", {"OK-ACCESS-KEY": "k\r\nX-Evil: 1"})]:
        with pytest.raises(_kit.PluginError, match="control character or space"):
            conn.request("GET", target, b"", headers)
    assert conn.sock is None


def test_a_tls_connection_is_reused(tmp_path):
    """Over https (every real exchange), the next call finds its connection again: an SSLSocket
    refuses recv(MSG_PEEK), which once made every idle TLS connection look closed, so each call
    paid a new handshake."""
    cert, key = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), JSONAnswer)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    server.socket = served.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pool = _kit.Pool()
    pool._tls = ssl.create_default_context(cafile=str(cert))
    try:
        for _ in range(3):
            conn, _ = pool.take("https", "localhost", server.server_port, 5)
            assert conn.request("GET", "/", b"", {})[:2] == (200, b"{}")
            pool.give_back("https", "localhost", server.server_port, conn)
        assert pool.opened == 1
    finally:
        pool.clear()
        server.shutdown()
        server.server_close()


class JSONAnswer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def self_signed(directory):
    """A certificate for localhost and its key, as PEM files (cryptography: a test-only helper)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_a_reply_with_too_many_headers_is_refused_as_http_client_refuses_it():
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n"
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        reply(head)


hypothesis = pytest.importorskip("hypothesis")


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(hypothesis.strategies.dictionaries(
    hypothesis.strategies.text(max_size=6),
    hypothesis.strategies.text(alphabet="aZ09-_.~ +&=/%é\n", max_size=8) | hypothesis.strategies.integers()
    | hypothesis.strategies.booleans() | hypothesis.strategies.lists(hypothesis.strategies.integers(), max_size=2),
    max_size=4))
def test_a_query_string_is_what_urlencode_writes(params):
    pairs = [(name, _kit._query_text(value)) for name, value in params.items()]
    assert _kit.query_string(params) == urllib.parse.urlencode(pairs)
