"""A WebSocket client (RFC 6455) from the standard library, for the exchanges' market-data streams.

The protocol in a screen:

1. Opening handshake. The client opens TCP (TLS for wss://) and sends an HTTP/1.1 GET:

       GET /ws/v5/public HTTP/1.1
       Host: ws.okx.com:8443
       Upgrade: websocket
       Connection: Upgrade
       Sec-WebSocket-Key: <16 random bytes, base64>
       Sec-WebSocket-Version: 13

   The server answers `101 Switching Protocols` with `Sec-WebSocket-Accept:
   base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))`. A client that does not check
   it may be talking to a cache or proxy that never understood the upgrade. From then on the
   socket carries frames both ways, no more HTTP.

2. Frames. Each frame is:

       byte 0   FIN (1 bit: last frame of a message), 3 reserved bits, opcode (4 bits)
       byte 1   MASK (1 bit), payload length (7 bits: 0-125, or 126 then 2 bytes, or 127 then 8)
       [4 bytes of masking key, when MASK is set]
       payload  (XORed with the masking key, byte i with key[i % 4])

   Every frame a client sends is masked with a fresh random key, every frame a server sends is
   not (the mask keeps a hostile page from writing bytes a proxy would read as HTTP).

3. Messages. Opcode 1 (text, UTF-8) or 2 (binary) starts a message; when its FIN bit is clear,
   continuation frames (opcode 0) follow until one has FIN. Control frames (close 8, ping 9,
   pong 10) are never fragmented, carry at most 125 bytes and may arrive between the fragments
   of a message.

4. Liveness. A ping must be answered with a pong carrying the same payload. Exchanges add their
   own keepalive on top (OKX expects a text "ping" and answers "pong"): see exchanges/_stream.py.

5. Closing. Either side sends a close frame (a 2-byte status code, 1000 = normal, then a
   reason); the other answers with a close frame; then the TCP connection ends.

Exchanges may compress their messages in binary frames (BingX: gzip): `inflated(payload)`.

Usage::

    ws = connect("wss://ws.okx.com:8443/ws/v5/public", timeout=10)
    ws.send_text('{"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]}')
    text = ws.receive(timeout=20)        # str (text frame) or bytes (binary); pings answered
    ws.close()

Every failure (refused connection, TLS, a bad handshake, a timeout, a protocol error, the
peer's close) raises an OSError: socket.timeout / TimeoutError for a read that timed out,
WebSocketError for the rest.
"""
import base64
import gzip
import hashlib
import os
import socket
import ssl
import struct
import threading
import time
import urllib.parse
import zlib

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"    # RFC 6455 section 1.3
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CONTROL = (CLOSE, PING, PONG)
NORMAL_CLOSURE = 1000
MAX_HEAD = 16384              # bytes of the server's handshake answer
MAX_MESSAGE = 16 << 20        # bytes of one message, all its fragments together
READ_SIZE = 65536


class WebSocketError(ConnectionError):
    """The handshake was refused, the peer broke the protocol, or the connection is closed."""


def connect(url, timeout, context=None, headers=None):
    """Open a WebSocket to ws:// or wss:// `url`: connect, TLS, handshake, each within `timeout`.
    `context`: the TLS context of a wss:// one (default: one verifying certificates and host
    names, made on the first call, not at import: building it takes ~25 ms a start needs not pay)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise WebSocketError(f"not a WebSocket address: {url[:80]}")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    sock = socket.create_connection((parts.hostname, port), timeout=timeout)
    try:
        if parts.scheme == "wss":
            sock = (context or ssl.create_default_context()).wrap_socket(sock, server_hostname=parts.hostname)
        rest = _handshake(sock, parts, headers or {})
    except BaseException:
        sock.close()
        raise
    return WebSocket(sock, rest)


def _handshake(sock, parts, headers):
    """Send the upgrade request, check the 101 answer: the bytes read past it begin the frames."""
    key = base64.b64encode(os.urandom(16)).decode()
    host = parts.netloc.rpartition("@")[2]
    lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1", f"Host: {host}",
             "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             "Sec-WebSocket-Version: 13", *(f"{name}: {value}" for name, value in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head, rest = _read_head(sock)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    if status_line.split(" ")[1:2] != ["101"]:
        raise WebSocketError(f"the server refused the WebSocket upgrade: {status_line[:80]}")
    if fields.get("upgrade", "").lower() != "websocket" or "upgrade" not in fields.get("connection", "").lower():
        raise WebSocketError("the server's 101 answer does not upgrade to websocket")
    if fields.get("sec-websocket-accept") != accept_key(key):
        raise WebSocketError("the server's Sec-WebSocket-Accept does not match our key")
    return rest


def accept_key(key):
    """The Sec-WebSocket-Accept a server must answer to Sec-WebSocket-Key `key`."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def _read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(READ_SIZE)
        if not chunk:
            raise WebSocketError("the server closed the connection during the handshake")
        data += chunk
        if len(data) > MAX_HEAD:
            raise WebSocketError("the server's handshake answer is too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def encode_frame(opcode, payload, fin=True, mask=True):
    """One frame; a client's are masked with a fresh random key."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + masked(payload, key)


def masked(payload, key):
    """payload XOR the 4-byte key repeated (masking and unmasking are the same operation)."""
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def parse_frame(buffer):
    """(fin, opcode, payload, frame length) of the first whole frame in `buffer`, or None while
    it is incomplete. A server's frames are never masked."""
    if len(buffer) < 2:
        return None
    first, second = buffer[0], buffer[1]
    if first & 0x70:
        raise WebSocketError("the server set reserved bits (an extension we did not ask for)")
    if second & 0x80:
        raise WebSocketError("the server masked a frame")
    length, start = second & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, start = struct.unpack_from("!H", buffer, 2)[0], 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, start = struct.unpack_from("!Q", buffer, 2)[0], 10
    if length > MAX_MESSAGE:
        raise WebSocketError(f"a frame of {length} bytes is over the limit")
    if len(buffer) < start + length:
        return None
    return bool(first & 0x80), first & 0x0F, bytes(buffer[start:start + length]), start + length


def inflated(payload):
    """A compressed binary message as bytes: gzip (BingX), zlib, or raw deflate."""
    if payload[:2] == b"\x1f\x8b":
        return gzip.decompress(payload)
    try:
        return zlib.decompress(payload)
    except zlib.error:
        return zlib.decompress(payload, -zlib.MAX_WBITS)


class WebSocket:
    """An open WebSocket. receive() is for one thread at a time; the send methods may be called
    from any thread (one lock keeps frames whole)."""

    def __init__(self, sock, rest=b""):
        self.sock = sock
        self.buffer = bytearray(rest)       # bytes received and not yet parsed
        self.fragments = []                 # the message being reassembled
        self.fragment_opcode = None
        self.send_lock = threading.Lock()
        self.close_sent = False
        self.closed = False
        self.last_frame = time.monotonic()  # when the last frame of any kind (a pong too) came

    def send_text(self, text):
        self._send(TEXT, text.encode())

    def send_binary(self, data):
        self._send(BINARY, data)

    def ping(self, payload=b""):
        self._send(PING, payload)

    def _send(self, opcode, payload):
        with self.send_lock:
            if self.close_sent:
                raise WebSocketError("the WebSocket is closing")
            self.sock.sendall(encode_frame(opcode, payload))

    def receive(self, timeout=None):
        """The next message: str for text, bytes for binary. Pings are answered on the way; a
        close frame is answered and raises WebSocketError. A read past `timeout` seconds raises
        socket.timeout and leaves the connection usable (a partial frame stays buffered)."""
        self.sock.settimeout(timeout)
        while True:
            fin, opcode, payload = self._next_frame()
            if opcode in CONTROL:
                self._control(opcode, payload)
                continue
            message = self._assemble(fin, opcode, payload)
            if message is not None:
                return message

    def _next_frame(self):
        while True:
            frame = parse_frame(self.buffer)
            if frame is not None:
                del self.buffer[:frame[3]]
                self.last_frame = time.monotonic()
                return frame[:3]
            chunk = self.sock.recv(READ_SIZE)
            if not chunk:
                self.closed = True
                raise WebSocketError("the server closed the connection")
            self.buffer += chunk

    def _control(self, opcode, payload):
        if opcode == PING:
            self._send(PONG, payload)
        elif opcode == CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else NORMAL_CLOSURE
            self._answer_close(payload[:2])
            raise WebSocketError(f"the server closed the WebSocket ({code} {payload[2:125].decode('utf-8', 'replace')})")

    def _assemble(self, fin, opcode, payload):
        """The whole message once its last fragment is in, else None."""
        if opcode == CONTINUATION:
            if self.fragment_opcode is None:
                raise WebSocketError("a continuation frame without a message to continue")
        elif self.fragment_opcode is not None:
            raise WebSocketError("a new message began inside a fragmented one")
        else:
            self.fragment_opcode = opcode
        self.fragments.append(payload)
        if sum(map(len, self.fragments)) > MAX_MESSAGE:
            raise WebSocketError("a message over the size limit")
        if not fin:
            return None
        data, kind = b"".join(self.fragments), self.fragment_opcode
        self.fragments, self.fragment_opcode = [], None
        if kind == TEXT:
            return data.decode("utf-8")
        if kind == BINARY:
            return data
        raise WebSocketError(f"unknown opcode {kind}")

    def _answer_close(self, code):
        with self.send_lock:
            if not self.close_sent:
                self.close_sent = True
                try:
                    self.sock.sendall(encode_frame(CLOSE, code))
                except OSError:
                    pass
        self.abort()

    def close(self, code=NORMAL_CLOSURE, reason="", timeout=1.0):
        """The close handshake: send a close frame, wait up to `timeout` for the server's, then
        end the connection."""
        with self.send_lock:
            already, self.close_sent = self.close_sent, True
            if not already:
                try:
                    self.sock.sendall(encode_frame(CLOSE, struct.pack("!H", code) + reason.encode()[:123]))
                except OSError:
                    already = True
        if not already and not self.closed:
            self._await_close(timeout)
        self.abort()

    def _await_close(self, timeout):
        try:
            self.sock.settimeout(timeout)
            while self._next_frame()[1] != CLOSE:
                pass
        except (OSError, ValueError):
            pass

    def abort(self):
        """End the connection at once (no close handshake): what a dead connection gets."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
