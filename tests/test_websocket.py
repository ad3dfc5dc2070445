"""The WebSocket client (exchanges/_websocket.py) against the fakes' server side (tests/fakes/ws.py)."""
import gzip
import socket
import struct
import threading
import zlib

import pytest

from exchanges import _websocket
from tests.fakes import ws
from tests.fakes.base import FakeExchange


class EchoServer(FakeExchange):
    """Echoes each message; "ping-me" makes it ping, "fragments" answers in three fragments,
    "binary" answers a gzip binary frame, "close" closes from the server side."""

    def __init__(self):
        super().__init__()
        self.ws_routes = {"/echo": self.echo}
        self.sessions = []

    def echo(self, session):
        self.sessions.append(session)
        while True:
            message = session.receive()
            self.ws_note(session, message)
            if message == "ping-me":
                session.ping(b"are you there")
            elif message == "fragments":
                session.send_frames([(ws.TEXT, b"one ", False), (ws.PING, b"between"), (0, b"two ", False),
                                     (0, b"three", True)])
            elif message == "binary":
                session.send_binary(gzip.compress(b'{"gzipped": true}'))
            elif message == "close":
                session.close(1001)
            else:
                session.send_text(message) if isinstance(message, str) else session.send_binary(message)


@pytest.fixture
def echo():
    with EchoServer() as server:
        yield server


def connected(server):
    return _websocket.connect(server.ws_url + "/echo", timeout=5)


def test_text_and_binary_messages_round_trip(echo):
    sock = connected(echo)
    sock.send_text("héllo")
    assert sock.receive(timeout=5) == "héllo"
    sock.send_binary(b"\x00\x01" * 40000)                 # a 64-bit length frame
    assert sock.receive(timeout=5) == b"\x00\x01" * 40000
    sock.close()


def test_every_client_frame_is_masked(echo):
    sock = connected(echo)
    for text in ("a", "b" * 200, "c" * 70000):
        sock.send_text(text)
        assert sock.receive(timeout=5) == text
    assert echo.sessions[0].unmasked == 0


def test_an_unmasked_frame_is_refused_by_the_server(echo):
    sock = connected(echo)
    sock.sock.sendall(_websocket.encode_frame(_websocket.TEXT, b"bare", mask=False))
    with pytest.raises(_websocket.WebSocketError):
        sock.receive(timeout=5)
    assert echo.sessions[0].unmasked == 1


def test_fragmented_message_is_reassembled_across_a_ping(echo):
    sock = connected(echo)
    sock.send_text("fragments")
    assert sock.receive(timeout=5) == "one two three"
    echo.ws_wait(lambda: echo.sessions[0].pongs == [b"between"])


def test_server_ping_is_answered_with_its_payload(echo):
    sock = connected(echo)
    sock.send_text("ping-me")
    sock.send_text("after")
    assert sock.receive(timeout=5) == "after"
    echo.ws_wait(lambda: echo.sessions[0].pongs == [b"are you there"])


def test_gzip_binary_frames_inflate(echo):
    sock = connected(echo)
    sock.send_text("binary")
    assert _websocket.inflated(sock.receive(timeout=5)) == b'{"gzipped": true}'
    assert _websocket.inflated(zlib.compress(b"z")) == b"z"
    raw = zlib.compressobj(wbits=-15)
    assert _websocket.inflated(raw.compress(b"deflate") + raw.flush()) == b"deflate"


def test_close_handshake_from_the_client(echo):
    sock = connected(echo)
    sock.close(1000, "bye")
    echo.ws_wait(lambda: not echo.ws_sessions)
    assert echo.sessions[0].close_code == 1000


def test_close_from_the_server_is_answered_and_raises(echo):
    sock = connected(echo)
    sock.send_text("close")
    with pytest.raises(_websocket.WebSocketError, match="1001"):
        sock.receive(timeout=5)
    assert sock.closed


def test_read_timeout_leaves_the_connection_usable(echo):
    sock = connected(echo)
    with pytest.raises(socket.timeout):
        sock.receive(timeout=0.05)
    sock.send_text("still here")
    assert sock.receive(timeout=5) == "still here"


def test_a_partial_frame_stays_buffered_across_a_timeout():
    left, right = socket.socketpair()
    sock = _websocket.WebSocket(left)
    whole = ws.frame(ws.TEXT, b"split in two")
    right.sendall(whole[:5])
    with pytest.raises(socket.timeout):
        sock.receive(timeout=0.05)
    right.sendall(whole[5:])
    assert sock.receive(timeout=5) == "split in two"
    right.close()
    sock.abort()


def test_a_wrong_accept_key_is_refused():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer():
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBrZXk=\r\n\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(_websocket.WebSocketError, match="Sec-WebSocket-Accept"):
        _websocket.connect(f"ws://127.0.0.1:{port}/", timeout=5)
    listener.close()


def test_a_plain_http_answer_is_a_refused_upgrade(echo):
    with pytest.raises(_websocket.WebSocketError, match="refused the WebSocket upgrade"):
        _websocket.connect(echo.ws_url + "/nowhere", timeout=5)


def test_accept_key_matches_the_rfc_example():
    assert _websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_server_masked_frame_is_a_protocol_error():
    masked = bytes([0x81, 0x80 | 1]) + b"\x00\x00\x00\x00" + b"x"
    with pytest.raises(_websocket.WebSocketError, match="masked"):
        _websocket.parse_frame(bytearray(masked))
    assert _websocket.parse_frame(bytearray(struct.pack("!BB", 0x81, 5) + b"ab")) is None
