"""_kit.Pool and the reply reader on their own: a host keeps as many idle connections as it had in
use at once (bounded), a dead idle one is never handed out, the TLS context waits for the first
https connection, and a reply's headers are read without the email package, as http.client would."""
import http.client
import io
import socket
import ssl

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
    assert isinstance(pool._tls, ssl.SSLContext) and conn._context is pool._tls
    assert pool.tls.verify_mode == ssl.CERT_REQUIRED and pool.tls.check_hostname


def reply(head):
    """An HTTPResponse of our reader over `head` (status line and headers) and a body."""
    sock = type("Sock", (), {"makefile": lambda self, mode: io.BytesIO(head)})()
    response = _kit._Response(sock, method="GET")
    response.begin()
    return response


def test_reply_headers_read_as_http_client_reads_them():
    response = reply(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-MBX-USED-WEIGHT-1M: 12\r\n"
                     b"X-Folded: one\r\n two\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\n{}")
    assert response.status == 200 and response.read() == b"{}" and not response.will_close
    headers = response.headers
    assert headers.get("x-mbx-used-weight-1m") == headers.get("X-MBX-USED-WEIGHT-1M") == "12"
    assert headers["x-folded"] == "one two" and headers.get("set-cookie") == "a=1"
    assert headers.get("absent") is None and "content-type" in headers
    assert response.getheader("Content-Type") == "application/json"


def test_reply_framing_follows_http_client():
    assert reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}").will_close
    assert reply(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}").will_close
    assert reply(b"HTTP/1.1 200 OK\r\n\r\n{}").will_close                   # no length: read to the end
    chunked = reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert chunked.read() == b"{}" and not chunked.will_close
    assert reply(b"HTTP/1.1 204 No Content\r\n\r\n").read() == b""
    assert reply(b"HTTP/1.1 100 Continue\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1").read() == b"1"


def test_a_reply_with_too_many_headers_is_refused_as_http_client_refuses_it():
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n"
    try:
        reply(head)
    except http.client.HTTPException as error:
        assert "more than 100 headers" in str(error)
    else:
        raise AssertionError("101 headers were read")
