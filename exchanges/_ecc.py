"""Signing with Coinbase's API keys in pure Python: ES256 (ECDSA over P-256) and EdDSA (Ed25519).

Coinbase Advanced Trade authenticates each request with a JWT signed by the key's private key
(ES256 or EdDSA). The plugin runs on the standard library alone, so both signatures are here,
with Python ints. Use:

    key = load_key(secret_text)            # PEM (EC or PKCS#8) or base64 Ed25519; ValueError else
    key.alg                                # "ES256" or "EdDSA"
    sign(key, message)                     # bytes: r||s (64) for ES256, R||S (64) for EdDSA
    jws(key, {"kid": name, "nonce": n, "typ": "JWT"}, claims)   # compact JWS; sets "alg"
    verify(key.alg, key.public, message, signature)             # for test fakes

ECDSA over P-256 (FIPS 186-4 section 6, SEC 1 section 4.1.3), SHA-256, nonce per RFC 6979:
    curve   y^2 = x^3 - 3x + B over the prime field P, base point G of prime order N.
    hash    e = SHA-256(message) as an integer (256 bits: no truncation needed for N's 256).
    nonce   k from HMAC-SHA256 seeded by the private key x and e (RFC 6979 section 3.2): the same
            key and message always give the same k, and no random number generator can leak x.
    point   R = k*G, computed in Jacobian coordinates (X/Z^2, Y/Z^3): no inversion per step;
            a table of j * 16^i * G, built once, makes k*G one addition per hex digit of k.
    r       R's x coordinate mod N;  s = (e + r*x) / k mod N  (a k giving r or s = 0 is skipped).
    low-s   (r, N - s) is equally valid; the lower s is taken so each signature has one form.
    output  JWS (RFC 7518 section 3.4) wants r and s as 32-byte big-endian integers, joined: 64
            bytes, not the DER SEQUENCE that OpenSSL writes.

Ed25519 (RFC 8032 section 5.1), points on -x^2 + y^2 = 1 + D*x^2*y^2 mod 2^255 - 19:
    key     h = SHA-512(seed); a = h's first 32 bytes as a little-endian integer, "clamped" (low
            3 bits cleared, bit 254 set, bit 255 cleared); prefix = h's last 32 bytes.
            The public key A = encode(a*B), B the base point.
    nonce   r = SHA-512(prefix || M) mod L, L the group order: deterministic by design.
    R       encode(r*B): y little-endian, x's low bit in the top bit.
    S       (r + SHA-512(R || A || M) * a) mod L; the signature is R || S (64 bytes).
    Points use extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z (section 5.1.4),
    and the same kind of table of the base point's multiples as for P-256.

Cost: about 0.5 ms an ES256 signature and 0.3 ms an Ed25519 one (CPython 3.11); the two
tables take about 50 ms each, once, at a curve's first use.

Python ints do not run in constant time, so timing many signatures very precisely could in
principle reveal bits of a key. The plugin signs on the trader's own machine, with a network's
jitter between it and anyone else; do not reuse this module for a signing service.
"""
import base64
import binascii
import functools
import hashlib
import hmac
import json
import re

# -- P-256 (secp256r1, prime256v1): FIPS 186-4 appendix D.1.2.3 --------------------------------
P = 2**256 - 2**224 + 2**192 + 2**96 - 1                 # the field prime
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B   # a = -3
G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
     0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551   # the order of G

# -- Ed25519: RFC 8032 section 5.1 -------------------------------------------------------------
Q = 2**255 - 19                                          # the field prime ("p" in RFC 8032)
L = 2**252 + 27742317777372353535851937790883648493      # the order of the base point
D = -121665 * pow(121666, -1, Q) % Q                     # the curve constant d
SQRT_M1 = pow(2, (Q - 1) // 4, Q)                        # a square root of -1 mod Q
_BY = 4 * pow(5, -1, Q) % Q                              # the base point: y = 4/5, x even
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
BASE = (_BX, _BY, 1, _BX * _BY % Q)                      # extended coordinates
ED_NEUTRAL = (0, 1, 1, 0)                                # the point (0, 1), the group's zero


class Key:
    """A loaded private key. `alg` is its JWS name; `public` its public key as bytes (65 bytes
    04||x||y for ES256, 32 for EdDSA). The secret is never shown by repr or str."""
    __slots__ = ("alg", "public", "_secret", "_prefix")

    def __init__(self, alg, secret, public, prefix=b""):
        self.alg, self._secret, self.public, self._prefix = alg, secret, public, prefix

    def __repr__(self):
        return f"<{self.alg} private key>"


def sign(key, message):
    """The signature of `message` (bytes) as JWS wants it: 64 bytes for either algorithm."""
    if key.alg == "ES256":
        r, s = ecdsa_sign(key._secret, message)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return ed25519_sign(key._secret, key._prefix, key.public, message)


def jws(key, header, claims):
    """A compact JWS (RFC 7515 section 7.1): b64url(header).b64url(claims).b64url(signature).

    `header` carries the caller's fields (kid, nonce, typ); `alg` is set from the key."""
    parts = [_b64url(_compact_json({**header, "alg": key.alg})), _b64url(_compact_json(claims))]
    signing_input = ".".join(parts).encode("ascii")
    return ".".join(parts + [_b64url(sign(key, signing_input))])


def verify(alg, public, message, signature):
    """True when `signature` (64 bytes) is `public`'s signature of `message`: for test fakes."""
    if len(signature) != 64:
        return False
    if alg == "ES256":
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        return ecdsa_verify(public, message, r, s)
    if alg == "EdDSA":
        return ed25519_verify(public, message, signature)
    return False


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact_json(value):
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


# -- ECDSA P-256 ------------------------------------------------------------------------------
# Jacobian point (X, Y, Z) is the affine (X/Z^2, Y/Z^3); Z == 0 is the point at infinity.

INFINITY = (1, 1, 0)


def ecdsa_sign(x, message):
    """(r, s) with the RFC 6979 nonce and the low s, for the private scalar x."""
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    for k in rfc6979_nonces(x, e):
        r = p256_affine(p256_base_multiply(k))[0] % N
        s = pow(k, -1, N) * (e + r * x) % N
        if r and s:
            return r, min(s, N - s)


def ecdsa_verify(public, message, r, s):
    """FIPS 186-4 section 6.4: u1*G + u2*Q has x == r (mod N). Either s, low or high, verifies."""
    point = p256_decode(public)
    if point is None or not (0 < r < N and 0 < s < N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, N)
    total = p256_add(p256_base_multiply(e * w % N), p256_multiply(r * w % N, _jacobian(point)))
    return total[2] != 0 and p256_affine(total)[0] % N == r


def rfc6979_nonces(x, e):
    """The candidate nonces k of RFC 6979 section 3.2 for HMAC-SHA256 and a 256-bit N, in order
    (the first is almost always taken; the next only if it fell outside [1, N-1] or gave 0)."""
    def mac(key, data):
        return hmac.new(key, data, hashlib.sha256).digest()
    seed = x.to_bytes(32, "big") + (e % N).to_bytes(32, "big")    # int2octets(x), bits2octets(h1)
    v, k = b"\x01" * 32, b"\x00" * 32                               # steps b and c
    k = mac(k, v + b"\x00" + seed)                                  # step d
    v = mac(k, v)                                                   # step e
    k = mac(k, v + b"\x01" + seed)                                  # step f
    v = mac(k, v)                                                   # step g
    while True:                                                     # step h
        v = mac(k, v)
        candidate = int.from_bytes(v, "big")
        if 0 < candidate < N:
            yield candidate
        k = mac(k, v + b"\x00")
        v = mac(k, v)


def p256_public(x):
    """The uncompressed SEC1 public key 04 || X || Y of the private scalar x."""
    px, py = p256_affine(p256_base_multiply(x))
    return b"\x04" + px.to_bytes(32, "big") + py.to_bytes(32, "big")


def p256_decode(public):
    """The affine point of an uncompressed public key, or None when it is not on the curve."""
    if len(public) != 65 or public[0] != 4:
        return None
    px, py = int.from_bytes(public[1:33], "big"), int.from_bytes(public[33:], "big")
    if px >= P or py >= P or (py * py - px ** 3 + 3 * px - B) % P:
        return None
    return px, py


def p256_base_multiply(k):
    """k * G from the table of G's multiples."""
    return multiply_by_table(k, _p256_table(), p256_add, INFINITY)


@functools.lru_cache(maxsize=None)
def _p256_table():
    return base_table(_jacobian(G), p256_add, INFINITY, lambda point: _jacobian(p256_affine(point)))


def p256_multiply(k, point):
    """k * point, left to right: double for each bit, add where the bit is 1."""
    result = INFINITY
    for bit in bin(k)[2:]:
        result = p256_double(result)
        if bit == "1":
            result = p256_add(result, point)
    return result


def p256_double(point):
    """2 * point, for a = -3 ("dbl-2001-b" of the Explicit-Formulas Database)."""
    x, y, z = point
    if z == 0 or y == 0:
        return INFINITY
    delta, gamma = z * z % P, y * y % P
    beta = x * gamma % P
    alpha = 3 * (x - delta) * (x + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y + z) ** 2 - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return x3, y3, z3


def p256_add(p1, p2):
    """p1 + p2 in Jacobian coordinates ("add-2007-bl" without its shortcuts)."""
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1z1, z2z2 = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2z2 % P, x2 * z1z1 % P
    s1, s2 = y1 * z2 * z2z2 % P, y2 * z1 * z1z1 % P
    h, r = (u2 - u1) % P, (s2 - s1) % P
    if h == 0:
        return p256_double(p1) if r == 0 else INFINITY
    hh = h * h % P
    hhh = h * hh % P
    x3 = (r * r - hhh - 2 * u1 * hh) % P
    y3 = (r * (u1 * hh - x3) - s1 * hhh) % P
    return x3, y3, h * z1 * z2 % P


def p256_affine(point):
    """(X/Z^2, Y/Z^3): the one inversion of a multiplication."""
    x, y, z = point
    inverse = pow(z, -1, P)
    return x * inverse * inverse % P, y * inverse ** 3 % P


def _jacobian(affine):
    return affine[0], affine[1], 1


# -- Ed25519 ---------------------------------------------------------------------------------

def ed25519_expand(seed):
    """(a, prefix) from the 32-byte seed: the clamped secret scalar and the nonce prefix."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8                    # clear the low 3 bits and bit 255 ...
    a |= 1 << 254                          # ... and set bit 254
    return a, h[32:]


def ed25519_public(seed):
    """The 32-byte public key A = encode(a*B) of the seed."""
    return ed_encode(ed_base_multiply(ed25519_expand(seed)[0]))


def ed25519_sign(a, prefix, public, message):
    """R || S for the expanded key (a, prefix) and its public key (RFC 8032 section 5.1.6)."""
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % L
    big_r = ed_encode(ed_base_multiply(r))
    k = int.from_bytes(hashlib.sha512(big_r + public + message).digest(), "little") % L
    return big_r + ((r + k * a) % L).to_bytes(32, "little")


def ed25519_verify(public, message, signature):
    """[S]B == R + [k]A (RFC 8032 section 5.1.7), checked as encode([S]B - [k]A) == R."""
    point = ed_decode(public)
    s = int.from_bytes(signature[32:], "little")
    if point is None or ed_decode(signature[:32]) is None or s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    x, y, z, t = ed_multiply(k, point)
    return ed_encode(ed_add(ed_base_multiply(s), (-x % Q, y, z, -t % Q))) == signature[:32]


def ed_add(p1, p2):
    """p1 + p2 in extended coordinates (RFC 8032 section 5.1.4)."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a, b = (y1 - x1) * (y2 - x2) % Q, (y1 + x1) * (y2 + x2) % Q
    c, d = 2 * t1 * t2 * D % Q, 2 * z1 * z2 % Q
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % Q, g * h % Q, f * g % Q, e * h % Q


def ed_double(point):
    """2 * point in extended coordinates (RFC 8032 section 5.1.4, "dbl-2008-hwcd")."""
    x1, y1, z1, _ = point
    a, b, c = x1 * x1 % Q, y1 * y1 % Q, 2 * z1 * z1 % Q
    h = a + b
    e, g = h - (x1 + y1) ** 2, a - b
    f = c + g
    return e * f % Q, g * h % Q, f * g % Q, e * h % Q


def ed_base_multiply(k):
    """k * BASE from the table of the base point's multiples."""
    return multiply_by_table(k, _ed_table(), ed_add, ED_NEUTRAL)


@functools.lru_cache(maxsize=None)
def _ed_table():
    return base_table(BASE, ed_add, ED_NEUTRAL, ed_normalise)


def ed_normalise(point):
    """The same point with Z = 1, so that adding it costs fewer big multiplications."""
    x, y, z, _ = point
    inverse = pow(z, -1, Q)
    x, y = x * inverse % Q, y * inverse % Q
    return x, y, 1, x * y % Q


def ed_multiply(k, point):
    """k * point, left to right: double for each bit, add where the bit is 1."""
    result = ED_NEUTRAL
    for bit in bin(k)[2:]:
        result = ed_double(result)
        if bit == "1":
            result = ed_add(result, point)
    return result


def ed_encode(point):
    """32 bytes: y little-endian, the top bit holding x's low bit (RFC 8032 section 5.1.2)."""
    x, y, _, _ = ed_normalise(point)
    return (y | (x & 1) << 255).to_bytes(32, "little")


def ed_decode(data):
    """The extended point of a 32-byte encoding, or None when it is none (section 5.1.3)."""
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= Q:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, Q) % Q
    x = pow(x2, (Q + 3) // 8, Q)
    if x * x % Q != x2:
        x = x * SQRT_M1 % Q
    if x * x % Q != x2 or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = Q - x
    return x, y, 1, x * y % Q


# -- Fixed-base multiplication, both curves ---------------------------------------------------
# k * base = sum over the hex digits k_i of k of (k_i * 16^i) * base: with the 64 rows of 16
# multiples below, built on first use (about 1000 additions), that is at most 64 additions and
# no doubling, against 256 doublings and about 128 additions bit by bit.

DIGITS = 64                              # hex digits of a scalar below 2^256 (N and L are)


def base_table(base, add, zero, normalise):
    """rows[i][j] = j * 16^i * base, for i < DIGITS and j < 16, each point normalised (Z = 1)."""
    rows = []
    for _ in range(DIGITS):
        row = [zero, base]
        for _ in range(14):
            row.append(normalise(add(row[-1], base)))
        rows.append(row)
        base = normalise(add(row[-1], base))           # 16^(i+1) * base
    return rows


def multiply_by_table(k, rows, add, zero):
    """k * base for the base of `rows` (base_table): one addition per non-zero hex digit of k."""
    result = zero
    for row in rows:
        k, digit = k >> 4, k & 15
        if digit:
            result = add(result, row[digit])
    if k:
        raise ValueError("scalar too large for the base table")
    return result


# -- Key loading -----------------------------------------------------------------------------
# Accepted: PEM "EC PRIVATE KEY" (SEC1, RFC 5915), PEM "PRIVATE KEY" (PKCS#8, RFC 5208/5958)
# holding an EC P-256 or an Ed25519 key (RFC 8410), and base64 Ed25519 (seed || public, or the
# 32-byte seed alone). Errors name what was wrong, never any part of the text.

OID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")     # 1.2.840.10045.2.1 id-ecPublicKey
OID_P256 = bytes.fromhex("2a8648ce3d030107")            # 1.2.840.10045.3.1.7 prime256v1
OID_ED25519 = bytes.fromhex("2b6570")                    # 1.3.101.112 id-Ed25519

SEQUENCE, INTEGER, OCTET_STRING, BIT_STRING, OID = 0x30, 0x02, 0x04, 0x03, 0x06
CONTEXT_0, CONTEXT_1 = 0xA0, 0xA1                        # [0] parameters, [1] publicKey

PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
FORMATS = ("expected an EC P-256 private key in PEM (-----BEGIN EC PRIVATE KEY----- or "
           "-----BEGIN PRIVATE KEY-----) or a base64 Ed25519 key (64 bytes: seed then public key)")


def load_key(text):
    """The Key in `text`: a PEM block (real or literal \\n newlines, quotes and spaces around
    tolerated) or a base64 Ed25519 key. ValueError, naming the problem and never the text, else."""
    if not isinstance(text, str):
        raise ValueError("the private key must be text; " + FORMATS)
    if not text.strip().strip("'\"").strip():
        raise ValueError("the private key is empty; " + FORMATS)
    if "-----BEGIN" in text:
        return _load_pem(text)
    return _load_ed25519_base64(text.strip().strip("'\"").strip())


def _load_pem(text):
    labels = []
    for match in PEM_BLOCK.finditer(text):
        label = match.group(1)
        labels.append(label)
        if label == "EC PRIVATE KEY":
            return _ec_key(_sec1_scalar(_pem_body(match.group(2)), None))
        if label == "PRIVATE KEY":
            return _pkcs8_key(_pem_body(match.group(2)))
    if "ENCRYPTED PRIVATE KEY" in labels:
        raise ValueError("the private key is encrypted: export it without a passphrase; " + FORMATS)
    if any("PUBLIC KEY" in label for label in labels):
        raise ValueError("this is a public key: paste the private key; " + FORMATS)
    if labels:
        raise ValueError("the PEM block is not a private key; " + FORMATS)
    raise ValueError("the PEM text has no complete -----BEGIN/-----END block; " + FORMATS)


def _pem_body(body):
    """The DER bytes of a PEM body: newlines real or written as \\n, spaces and \\/ tolerated."""
    body = re.sub(r"\\[nrt]|\s", "", body).replace("\\/", "/")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the PEM body is not valid base64; " + FORMATS) from None


def _load_ed25519_base64(text):
    try:
        raw = base64.b64decode(re.sub(r"\s", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the private key is neither PEM nor base64; " + FORMATS) from None
    if len(raw) == 64:
        key = _ed25519_key(raw[:32])
        if key.public != raw[32:]:
            raise ValueError("the Ed25519 key's public half (bytes 33-64) does not match its seed "
                             "(bytes 1-32): the key is damaged or not an Ed25519 key")
        return key
    if len(raw) == 32:
        return _ed25519_key(raw)
    raise ValueError(f"the base64 key is {len(raw)} bytes; " + FORMATS)


def _ec_key(x):
    return Key("ES256", x, p256_public(x))


def _ed25519_key(seed):
    a, prefix = ed25519_expand(seed)
    return Key("EdDSA", a, ed_encode(ed_multiply(a, BASE)), prefix)


def _sec1_scalar(der, algorithm_curve):
    """The private scalar of a SEC1 ECPrivateKey (RFC 5915 section 3):
    SEQUENCE { INTEGER 1, OCTET STRING key, [0] curve OID OPTIONAL, [1] BIT STRING public OPTIONAL }.
    `algorithm_curve` is the curve PKCS#8 named outside, if any."""
    fields = _der_fields(_der_single(der, SEQUENCE, "EC private key"), "EC private key")
    if len(fields) < 2 or fields[0] != (INTEGER, b"\x01") or fields[1][0] != OCTET_STRING:
        raise ValueError("the EC private key is not a SEC1 ECPrivateKey (RFC 5915)")
    x = int.from_bytes(fields[1][1], "big")
    tagged = dict(fields[2:])
    curve = algorithm_curve
    if CONTEXT_0 in tagged:
        curve = _der_single(tagged[CONTEXT_0], OID, "EC curve name")
    if curve is not None and curve != OID_P256:
        raise ValueError("the EC key is not on P-256 (prime256v1, secp256r1), the curve Coinbase uses")
    if not 0 < x < N:
        raise ValueError("the EC private key's scalar is out of range for P-256")
    if CONTEXT_1 in tagged:
        public = _der_single(tagged[CONTEXT_1], BIT_STRING, "EC public key")
        if public[1:] != p256_public(x):
            raise ValueError("the EC key's public key does not match its private key: the key is damaged")
    return x


def _pkcs8_key(der):
    """PKCS#8 PrivateKeyInfo (RFC 5208, RFC 5958): SEQUENCE { INTEGER version,
    SEQUENCE { algorithm OID, parameters }, OCTET STRING privateKey, ... }."""
    fields = _der_fields(_der_single(der, SEQUENCE, "PKCS#8 key"), "PKCS#8 key")
    if len(fields) < 3 or fields[0][0] != INTEGER or fields[1][0] != SEQUENCE or fields[2][0] != OCTET_STRING:
        raise ValueError("the PRIVATE KEY block is not PKCS#8 PrivateKeyInfo")
    algorithm = _der_fields(fields[1][1], "PKCS#8 algorithm")
    if not algorithm or algorithm[0][0] != OID:
        raise ValueError("the PKCS#8 key names no algorithm")
    if algorithm[0][1] == OID_EC_PUBLIC_KEY:
        curve = algorithm[1][1] if len(algorithm) > 1 and algorithm[1][0] == OID else None
        return _ec_key(_sec1_scalar(fields[2][1], curve))
    if algorithm[0][1] == OID_ED25519:
        seed = _der_single(fields[2][1], OCTET_STRING, "Ed25519 key")   # RFC 8410 CurvePrivateKey
        if len(seed) != 32:
            raise ValueError("the Ed25519 key in the PKCS#8 block is not 32 bytes")
        return _ed25519_key(seed)
    raise ValueError("the PKCS#8 key is neither EC P-256 nor Ed25519, the two kinds Coinbase issues")


# -- A minimal DER reader (X.690): only tag, length and value; enough for the three formats ----

def _der_read(data, at, what):
    """(tag, value, next offset) of the element at `at`: one tag byte, a short or long length."""
    if at + 2 > len(data):
        raise ValueError(f"the {what} is truncated (DER)")
    tag, length, at = data[at], data[at + 1], at + 2
    if length & 0x80:
        size = length & 0x7F
        if size == 0 or size > 4 or at + size > len(data):
            raise ValueError(f"the {what} has a bad DER length")
        length, at = int.from_bytes(data[at:at + size], "big"), at + size
    if at + length > len(data):
        raise ValueError(f"the {what} is truncated (DER)")
    return tag, data[at:at + length], at + length


def _der_fields(data, what):
    """[(tag, value), ...] of the elements one after the other in `data` (a SEQUENCE's value)."""
    fields, at = [], 0
    while at < len(data):
        tag, value, at = _der_read(data, at, what)
        fields.append((tag, value))
    return fields


def _der_single(data, tag, what):
    """The value of `data`, which must be exactly one element with this tag."""
    found, value, end = _der_read(data, 0, what)
    if found != tag or end != len(data):
        raise ValueError(f"the {what} is not the DER expected")
    return value
