"""The server side of WebSocket (RFC 6455) for the fake exchanges, written apart from the
plugin's client (exchanges/_websocket.py) so the two check each other.

A fake serves its stream on its own http.server: a GET with `Upgrade: websocket` to a path in
the fake's `ws_routes` is upgraded by `upgrade(handler)`, and the handler's thread then runs
the session (`fake.ws_session(session)`) until either side closes. The session insists that
every client frame is masked (a violation is recorded in `unmasked` and closes with 1002).
"""
import base64
import hashlib
import os
import socket
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The client closed the session, broke the protocol, or went away."""


def upgrade(handler):
    """Answer the handshake on an http.server handler; a Session on its socket, or None after
    answering 400 to a request that is no valid upgrade."""
    key = handler.headers.get("Sec-WebSocket-Key", "")
    if handler.headers.get("Upgrade", "").lower() != "websocket" or handler.headers.get("Sec-WebSocket-Version") != "13" \
            or len(base64.b64decode(key.encode(), validate=False) or b"") != 16:
        handler.send_error(400, "not a WebSocket upgrade")
        return None
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    return Session(handler.connection, handler.path)


def frame(opcode, payload, fin=True):
    """A server frame: never masked."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


class Session:
    def __init__(self, sock, path):
        self.sock, self.path = sock, path
        self.lock = threading.Lock()
        self.unmasked = 0           # client frames that came without a mask (a protocol error)
        self.pongs = []             # payloads of the pongs the client sent
        self.pings = []             # payloads of the pings the client sent
        self.closed = False
        self.close_code = None      # the code of the client's close frame
        self.changed = lambda: None  # called on a pong and a close (the fake notifies its waiters)
        self.answers_pings = lambda: True    # False: the client's ping frames go unanswered (a dead peer)

    # -- sending (any thread)
    def send_text(self, text):
        self.send_frames([(TEXT, text.encode())])

    def send_binary(self, data):
        self.send_frames([(BINARY, data)])

    def send_frames(self, frames):
        """Raw frames: [(opcode, payload)] or [(opcode, payload, fin)], e.g. fragments."""
        data = b"".join(frame(*f) for f in frames)
        with self.lock:
            if self.closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def ping(self, payload=b"hello"):
        self.send_frames([(PING, payload)])

    def close(self, code=1000):
        self.send_frames([(CLOSE, struct.pack("!H", code))])

    def drop(self):
        """End the TCP connection with no close frame, as a network failure does."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- receiving (the session's thread)
    def receive(self, timeout=None):
        """The next message from the client (str or bytes), its pings answered; Closed when the
        client closed (its close frame is answered) or broke the protocol."""
        self.sock.settimeout(timeout)
        parts, kind = [], None
        while True:
            fin, opcode, payload = self._frame()
            if opcode == PING:
                self.pings.append(payload)
                self.changed()
                if self.answers_pings():
                    self.send_frames([(PONG, payload)])
            elif opcode == PONG:
                self.pongs.append(payload)
                self.changed()
            elif opcode == CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.send_frames([(CLOSE, payload[:2])])
                self.drop()
                self.changed()
                raise Closed("the client closed")
            else:
                kind = kind or opcode
                parts.append(payload)
                if fin:
                    data = b"".join(parts)
                    return data.decode() if kind == TEXT else data

    def _frame(self):
        first, second = self._exactly(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exactly(8))[0]
        if not second & 0x80:
            self.unmasked += 1
            self.close(1002)
            self.drop()
            raise Closed("an unmasked client frame")
        key = self._exactly(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(self._exactly(length)))
        return bool(first & 0x80), first & 0x0F, payload

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data))
            except OSError as error:
                if isinstance(error, socket.timeout):
                    raise
                chunk = b""
            if not chunk:
                self.closed = True
                raise Closed("the client went away")
            data += chunk
        return data


def new_key():
    return base64.b64encode(os.urandom(16)).decode()
