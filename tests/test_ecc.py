"""exchanges/_ecc.py: ES256 and Ed25519 signing in pure Python, checked against the RFCs' own
test vectors and, with the `cryptography` package (a test-only dependency), as an independent
implementation: it verifies our signatures, and ours verify its."""
import base64
import hashlib
import json
import os
import random

import pytest

import fmz_plugin
from exchanges import _ecc
from tests.conftest import ROOT

# -- RFC 6979 appendix A.2.5: ECDSA, 256 bits (prime field), i.e. P-256, with SHA-256 -----------
RFC6979_X = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
RFC6979_UX = 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
RFC6979_UY = 0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299
RFC6979_SHA256 = {   # message: (k, r, s) as printed in the RFC
    b"sample": (0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60,
                0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
                0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8),
    b"test": (0xD16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0,
              0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
              0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083),
}

# -- RFC 8032 section 7.1: Ed25519 (seed, public key, message, signature), hex ------------------
RFC8032 = {
    "TEST 1": ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
               "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
               "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
               "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    "TEST 2": ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
               "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
               "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
               "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    "TEST 3": ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
               "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
               "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
               "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    "TEST SHA(abc)": ("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
                      "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
                      hashlib.sha512(b"abc").hexdigest(),
                      "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
                      "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
}


def ed25519_base64(seed_hex, public_hex=""):
    return base64.b64encode(bytes.fromhex(seed_hex + public_hex)).decode()


# -- The RFCs' vectors ------------------------------------------------------------------------

def test_rfc6979_public_key_is_the_appendix_one():
    public = _ecc.p256_public(RFC6979_X)
    assert public == b"\x04" + RFC6979_UX.to_bytes(32, "big") + RFC6979_UY.to_bytes(32, "big")


@pytest.mark.parametrize("message", sorted(RFC6979_SHA256))
def test_rfc6979_nonce_and_signature_are_the_appendix_ones(message):
    """k and r exactly; s low: "sample"'s printed s is above N/2, so we give N - s (the same
    signature, the other sign), "test"'s is already low and is given as printed."""
    k, r, s = RFC6979_SHA256[message]
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    assert next(_ecc.rfc6979_nonces(RFC6979_X, e)) == k
    low_s = min(s, _ecc.N - s)
    assert (message == b"sample") == (low_s != s)           # which vector is high-s
    assert _ecc.ecdsa_sign(RFC6979_X, message) == (r, low_s)
    key = _ecc.Key("ES256", RFC6979_X, _ecc.p256_public(RFC6979_X))
    assert _ecc.sign(key, message) == r.to_bytes(32, "big") + low_s.to_bytes(32, "big")
    assert _ecc.ecdsa_verify(key.public, message, r, s)     # the printed (high) s verifies too


@pytest.mark.parametrize("name", sorted(RFC8032))
def test_rfc8032_vectors(name):
    seed, public, message, signature = RFC8032[name]
    key = _ecc.load_key(ed25519_base64(seed, public))
    assert key.alg == "EdDSA" and key.public.hex() == public
    assert _ecc.sign(key, bytes.fromhex(message)).hex() == signature
    assert _ecc.verify("EdDSA", key.public, bytes.fromhex(message), bytes.fromhex(signature))
    assert _ecc.load_key(ed25519_base64(seed)).public.hex() == public      # the seed alone


def test_a_changed_message_or_signature_does_not_verify():
    seed, public, message, signature = RFC8032["TEST 2"]
    public, signature = bytes.fromhex(public), bytes.fromhex(signature)
    assert not _ecc.verify("EdDSA", public, b"\x73", signature)
    assert not _ecc.verify("EdDSA", public, b"\x72", signature[:63] + b"\x01")
    es256 = _ecc.Key("ES256", RFC6979_X, _ecc.p256_public(RFC6979_X))
    assert not _ecc.verify("ES256", es256.public, b"samplf", _ecc.sign(es256, b"sample"))
    assert not _ecc.verify("ES256", es256.public, b"sample", b"\x00" * 64)


# -- Against the cryptography package --------------------------------------------------------

def crypto():
    """cryptography's modules, or skip (CI installs it; it is never a runtime dependency)."""
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils
    return hashes, serialization, ec, ed25519, rsa, utils


def pem_of(private_key, private_format, encryption=None):
    _, serialization, *_ = crypto()
    return private_key.private_bytes(serialization.Encoding.PEM, private_format,
                                     encryption or serialization.NoEncryption()).decode()


@pytest.mark.parametrize("form", ["TraditionalOpenSSL", "PKCS8"])
def test_cryptography_verifies_our_es256_signatures(form):
    hashes, serialization, ec, _, _, utils = crypto()
    rng = random.Random(form)
    for _ in range(8):
        private = ec.generate_private_key(ec.SECP256R1())
        key = _ecc.load_key(pem_of(private, getattr(serialization.PrivateFormat, form)))
        message = rng.randbytes(rng.randrange(0, 300))
        signature = _ecc.sign(key, message)
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        assert len(signature) == 64 and s <= _ecc.N // 2
        private.public_key().verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        theirs = utils.decode_dss_signature(private.sign(message, ec.ECDSA(hashes.SHA256())))
        assert _ecc.ecdsa_verify(key.public, message, *theirs)
        assert key.public == private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def test_our_nonces_are_cryptographys_rfc6979_ones():
    hashes, _, ec, _, _, utils = crypto()
    try:
        deterministic = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    except TypeError:
        pytest.skip("this cryptography has no deterministic (RFC 6979) ECDSA")
    for seed in range(8):
        x = random.Random(seed).randrange(1, _ecc.N)
        message = f"message {seed}".encode()
        r, s = utils.decode_dss_signature(ec.derive_private_key(x, ec.SECP256R1()).sign(message, deterministic))
        assert _ecc.ecdsa_sign(x, message) == (r, min(s, _ecc.N - s))


def test_our_ed25519_signatures_are_cryptographys():
    _, serialization, _, ed25519, _, _ = crypto()
    rng = random.Random(25519)
    for _ in range(8):
        private = ed25519.Ed25519PrivateKey.generate()
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        message = rng.randbytes(rng.randrange(0, 300))
        for text in (base64.b64encode(seed + public).decode(), pem_of(private, serialization.PrivateFormat.PKCS8)):
            key = _ecc.load_key(text)
            assert key.public == public
            assert _ecc.sign(key, message) == private.sign(message)          # Ed25519 is deterministic
            private.public_key().verify(_ecc.sign(key, message), message)


def test_jws_is_compact_signed_and_sets_alg():
    hashes, _, ec, _, _, utils = crypto()
    private = ec.generate_private_key(ec.SECP256R1())
    key = _ecc.load_key(pem_of(private, crypto()[1].PrivateFormat.TraditionalOpenSSL))
    claims = {"sub": "organizations/o/apiKeys/k", "iss": "cdp", "nbf": 1700000000, "exp": 1700000120,
              "uri": "GET api.coinbase.com/api/v3/brokerage/accounts"}
    token = _ecc.jws(key, {"kid": "organizations/o/apiKeys/k", "nonce": "ab12", "typ": "JWT", "alg": "none"}, claims)
    header, body, signature = token.split(".")
    assert "=" not in token and all(set(part) <= set(BASE64URL) for part in (header, body, signature))
    assert json.loads(unb64url(header)) == {"kid": "organizations/o/apiKeys/k", "nonce": "ab12", "typ": "JWT",
                                            "alg": "ES256"}
    assert json.loads(unb64url(body)) == claims and b'", "' not in unb64url(body)    # compact JSON
    raw = unb64url(signature)
    assert len(raw) == 64
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    private.public_key().verify(der, f"{header}.{body}".encode(), ec.ECDSA(hashes.SHA256()))


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def unb64url(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# -- Key loading: the forms a trader pastes ---------------------------------------------------

def pasted_forms(pem):
    """A PEM as it may reach us: as written, one line with literal \\n (Coinbase's JSON, FMZ's
    one-line field), that quoted, with spaces for newlines, with CRLF, with JSON's \\/ escape."""
    one_line = pem.strip().replace("\n", "\\n")
    return [pem, one_line, f'"{one_line}"', f"  '{one_line}\\n'  ", pem.replace("\n", " "),
            pem.replace("\n", "\r\n"), one_line.replace("/", "\\/")]


@pytest.mark.parametrize("form", ["TraditionalOpenSSL", "PKCS8"])
def test_ec_pem_loads_with_real_or_literal_newlines(form):
    _, serialization, ec, _, _, _ = crypto()
    private = ec.generate_private_key(ec.SECP256R1())
    pem = pem_of(private, getattr(serialization.PrivateFormat, form))
    for text in pasted_forms(pem):
        key = _ecc.load_key(text)
        assert key.alg == "ES256" and key._secret == private.private_numbers().private_value


def test_ed25519_pkcs8_pem_loads_with_literal_newlines():
    _, serialization, _, ed25519, _, _ = crypto()
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for text in pasted_forms(pem_of(private, serialization.PrivateFormat.PKCS8)):
        key = _ecc.load_key(text)
        assert key.alg == "EdDSA" and key.public == public


def test_openssl_ecparam_output_with_its_parameters_block_loads():
    """`openssl ecparam -genkey` writes an EC PARAMETERS block before the key."""
    _, serialization, ec, _, _, _ = crypto()
    pem = pem_of(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.TraditionalOpenSSL)
    params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    assert _ecc.load_key(params + pem).alg == "ES256"


def test_the_whole_downloaded_json_loads_too():
    _, serialization, ec, _, _, _ = crypto()
    pem = pem_of(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.TraditionalOpenSSL)
    downloaded = json.dumps({"name": "organizations/o/apiKeys/k", "privateKey": pem})
    assert _ecc.load_key(downloaded).alg == "ES256"


def test_a_key_never_shows_its_secret():
    key = _ecc.load_key(ed25519_base64(RFC8032["TEST 1"][0]))
    assert repr(key) == str(key) == "<EdDSA private key>"


# -- Bad keys: ValueError that says what is wrong and never echoes the key ---------------------

def bad_keys():
    """(what, text) pairs built with cryptography where needed."""
    _, serialization, ec, ed25519, rsa, _ = crypto()
    ec_pem = pem_of(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.TraditionalOpenSSL)
    sec1 = pem_der(ec_pem)
    other = pem_der(pem_of(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.TraditionalOpenSSL))
    seed = os.urandom(32)
    ed = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    ed_public = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return [
        ("secp256k1", pem_of(ec.generate_private_key(ec.SECP256K1()), serialization.PrivateFormat.TraditionalOpenSSL)),
        ("secp384r1 in PKCS#8", pem_of(ec.generate_private_key(ec.SECP384R1()), serialization.PrivateFormat.PKCS8)),
        ("RSA", pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024), serialization.PrivateFormat.PKCS8)),
        ("encrypted", pem_of(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(b"pass phrase"))),
        ("public key", ed.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo).decode()),
        ("wrong public half in SEC1", der_pem(sec1[:-65] + other[-65:], "EC PRIVATE KEY")),
        ("truncated DER", der_pem(sec1[:40], "EC PRIVATE KEY")),
        ("garbage in the body", ec_pem.replace(ec_pem.splitlines()[1][:12], "!!" + ec_pem.splitlines()[1][2:12])),
        ("no END line", ec_pem.split("-----END")[0]),
        ("Ed25519 with another key's public half", base64.b64encode(seed + bytes(31) + b"\x01").decode()),
        ("Ed25519 with its halves swapped", base64.b64encode(ed_public + seed).decode()),
        ("48 bytes of base64", base64.b64encode(os.urandom(48)).decode()),
        ("not base64", "my coinbase secret: " + base64.b64encode(os.urandom(30)).decode() + "?"),
        ("the key name instead of the key", "organizations/" + os.urandom(8).hex() + "/apiKeys/" + os.urandom(8).hex()),
        ("empty", "  \"\"  "),
    ]


def pem_der(pem):
    return base64.b64decode("".join(pem.strip().splitlines()[1:-1]))


def der_pem(der, label):
    return f"-----BEGIN {label}-----\n{base64.b64encode(der).decode()}\n-----END {label}-----\n"


def test_bad_keys_raise_a_clear_value_error_without_the_key():
    for what, text in bad_keys():
        with pytest.raises(ValueError) as raised:
            _ecc.load_key(text)
        message = str(raised.value)
        error = raised.value                 # no chained exception that could carry the text
        assert message and error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), what
        secret = "".join(line for line in text.splitlines() if not line.startswith("-----"))
        leaks = [secret[at:at + 6] for at in range(len(secret) - 5) if secret[at:at + 6] in message]
        assert not leaks, (what, message)


def test_bad_keys_say_what_is_wrong():
    said = {what: _error(text) for what, text in bad_keys()}
    assert "P-256" in said["secp256k1"] and "P-256" in said["secp384r1 in PKCS#8"]
    assert "neither EC P-256 nor Ed25519" in said["RSA"]
    assert "encrypted" in said["encrypted"] and "public key" in said["public key"]
    assert "does not match" in said["wrong public half in SEC1"]
    assert "does not match" in said["Ed25519 with another key's public half"]
    assert "48 bytes" in said["48 bytes of base64"] and "empty" in said["empty"]


def _error(text):
    try:
        _ecc.load_key(text)
    except ValueError as error:
        return str(error)
    raise AssertionError("loaded a bad key")


def test_a_non_text_key_is_a_value_error():
    with pytest.raises(ValueError, match="must be text"):
        _ecc.load_key(b"-----BEGIN PRIVATE KEY-----")


# -- The bundle carries the module once an exchange imports it ----------------------------------

@pytest.mark.parametrize("statement", ["from exchanges._ecc import load_key, jws",
                                       "from exchanges import _ecc"])
def test_the_bundler_finds_the_module_from_an_exchanges_import(statement):
    assert fmz_plugin._project_imports(ROOT, statement + "\n", "exchanges.coinbase") == ["exchanges._ecc"]


def test_the_module_text_survives_the_bundles_literal():
    with open(os.path.join(ROOT, "exchanges", "_ecc.py"), encoding="utf-8") as file:
        text = file.read()
    assert eval(fmz_plugin._raw_literal(text)) == "\n" + text
