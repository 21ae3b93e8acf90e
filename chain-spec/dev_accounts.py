#!/usr/bin/env python3
"""SS58 addresses of sr25519 dev accounts (`//Alice`, `//Node1//stash`, ...).

Pure Python, standard library only, so the chain spec can be regenerated
without `subkey`. It reproduces what sp-core does for `Pair::from_string`:

  seed      = the well-known dev seed (mini secret of the dev phrase
              "bottom drive obey lake curtain smoke basket hold race lonely
              fit walk", i.e. PBKDF2-HMAC-SHA512(entropy, "mnemonic")[..32])
  keypair   = schnorrkel MiniSecretKey::expand(ExpansionMode::Ed25519)
  //junction = schnorrkel hard_derive_mini_secret_key(chain code, b"")
              (a merlin transcript, i.e. STROBE-128 over Keccak-f[1600])
  public    = scalar * ristretto basepoint, ristretto-encoded
  address   = SS58 with the generic Substrate prefix 42

`self_test()` checks the result against the dev accounts that
`substrate-contracts-node build-spec --dev` funds; generate.sh runs it before
it writes anything.

`sign()` makes sr25519 signatures for check_dev_chain.py.

Usage: dev_accounts.py [--self-test] URI...   prints "URI ADDRESS PUBKEY_HEX"
"""

import hashlib
import os
import sys

# Secret seed of the dev phrase (sp-core `DEV_PHRASE`).
DEV_SEED = bytes.fromhex("fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e")

# ---------------------------------------------------------------- Keccak / STROBE / merlin

_RC = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
]
_ROT = [
    [0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61],
    [28, 55, 25, 21, 56], [27, 20, 39, 8, 14],
]
_M64 = (1 << 64) - 1


def _rol(v, n):
    return ((v << n) | (v >> (64 - n))) & _M64 if n else v


def keccak_f1600(state: bytearray) -> None:
    """In-place Keccak-f[1600] on a 200-byte state (lanes little-endian)."""
    a = [[int.from_bytes(state[8 * (x + 5 * y):8 * (x + 5 * y) + 8], "little")
          for y in range(5)] for x in range(5)]
    for rc in _RC:
        c = [a[x][0] ^ a[x][1] ^ a[x][2] ^ a[x][3] ^ a[x][4] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rol(c[(x + 1) % 5], 1) for x in range(5)]
        a = [[a[x][y] ^ d[x] for y in range(5)] for x in range(5)]
        b = [[0] * 5 for _ in range(5)]
        for x in range(5):
            for y in range(5):
                b[y][(2 * x + 3 * y) % 5] = _rol(a[x][y], _ROT[x][y])
        a = [[b[x][y] ^ (~b[(x + 1) % 5][y] & b[(x + 2) % 5][y]) for y in range(5)]
             for x in range(5)]
        a[0][0] ^= rc
    for x in range(5):
        for y in range(5):
            state[8 * (x + 5 * y):8 * (x + 5 * y) + 8] = a[x][y].to_bytes(8, "little")


class Strobe128:
    """The minimal STROBE-128 that merlin uses (merlin 3 `strobe.rs`)."""

    R = 166
    FLAG_I, FLAG_A, FLAG_C, FLAG_T, FLAG_M, FLAG_K = 1, 2, 4, 8, 16, 32

    def __init__(self, label: bytes):
        st = bytearray(200)
        st[0:6] = bytes([1, self.R + 2, 1, 0, 1, 96])
        st[6:18] = b"STROBEv1.0.2"
        keccak_f1600(st)
        self.st, self.pos, self.pos_begin, self.cur_flags = st, 0, 0, 0
        self.meta_ad(label, False)

    def _run_f(self):
        self.st[self.pos] ^= self.pos_begin
        self.st[self.pos + 1] ^= 0x04
        self.st[self.R + 1] ^= 0x80
        keccak_f1600(self.st)
        self.pos = self.pos_begin = 0

    def _absorb(self, data):
        for byte in data:
            self.st[self.pos] ^= byte
            self.pos += 1
            if self.pos == self.R:
                self._run_f()

    def _squeeze(self, n):
        out = bytearray()
        for _ in range(n):
            out.append(self.st[self.pos])
            self.st[self.pos] = 0
            self.pos += 1
            if self.pos == self.R:
                self._run_f()
        return bytes(out)

    def _begin_op(self, flags, more):
        if more:
            assert self.cur_flags == flags
            return
        old_begin = self.pos_begin
        self.pos_begin = self.pos + 1
        self.cur_flags = flags
        self._absorb(bytes([old_begin, flags]))
        if flags & (self.FLAG_C | self.FLAG_K) and self.pos != 0:
            self._run_f()

    def meta_ad(self, data, more):
        self._begin_op(self.FLAG_M | self.FLAG_A, more)
        self._absorb(data)

    def ad(self, data, more):
        self._begin_op(self.FLAG_A, more)
        self._absorb(data)

    def prf(self, n, more):
        self._begin_op(self.FLAG_I | self.FLAG_A | self.FLAG_C, more)
        return self._squeeze(n)


class Transcript:
    """merlin 3 `Transcript`."""

    def __init__(self, label: bytes):
        self.strobe = Strobe128(b"Merlin v1.0")
        self.append_message(b"dom-sep", label)

    def append_message(self, label: bytes, message: bytes):
        self.strobe.meta_ad(label, False)
        self.strobe.meta_ad(len(message).to_bytes(4, "little"), True)
        self.strobe.ad(message, False)

    def challenge_bytes(self, label: bytes, n: int) -> bytes:
        self.strobe.meta_ad(label, False)
        self.strobe.meta_ad(n.to_bytes(4, "little"), True)
        return self.strobe.prf(n, False)


# ---------------------------------------------------------------- edwards25519 / ristretto255

P = 2**255 - 19
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _is_neg(x):
    return (x % P) & 1


def _abs(x):
    x %= P
    return P - x if _is_neg(x) else x


def _sqrt_ratio_m1(u, v):
    u %= P
    v %= P
    r = (u * pow(v, 3, P)) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    check = v * r * r % P
    correct = check == u
    flipped = check == (-u) % P
    flipped_i = check == (-u * SQRT_M1) % P
    if flipped or flipped_i:
        r = r * SQRT_M1 % P
    return correct or flipped, _abs(r)


INVSQRT_A_MINUS_D = _sqrt_ratio_m1(1, (-1 - D) % P)[1]


def _base_point():
    y = 4 * pow(5, P - 2, P) % P
    _, x = _sqrt_ratio_m1((y * y - 1) % P, (D * y * y + 1) % P)
    return (x, y, 1, x * y % P)


def _add(p1, p2):
    """Extended twisted-Edwards addition (a = -1)."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(k, point):
    acc = (0, 1, 1, 0)
    while k:
        if k & 1:
            acc = _add(acc, point)
        point = _add(point, point)
        k >>= 1
    return acc


def ristretto_encode(point) -> bytes:
    x0, y0, z0, t0 = point
    u1 = (z0 + y0) * (z0 - y0) % P
    u2 = x0 * y0 % P
    _, invsqrt = _sqrt_ratio_m1(1, u1 * u2 * u2)
    den1 = invsqrt * u1 % P
    den2 = invsqrt * u2 % P
    z_inv = den1 * den2 * t0 % P
    if _is_neg(t0 * z_inv):
        x, y, den_inv = y0 * SQRT_M1 % P, x0 * SQRT_M1 % P, den1 * INVSQRT_A_MINUS_D % P
    else:
        x, y, den_inv = x0, y0, den2
    if _is_neg(x * z_inv):
        y = (-y) % P
    return _abs(den_inv * (z0 - y)).to_bytes(32, "little")


# ---------------------------------------------------------------- schnorrkel / sp-core

def _expand_ed25519(mini: bytes) -> bytes:
    """MiniSecretKey::expand_ed25519: the secret scalar, divided by the cofactor."""
    key = bytearray(hashlib.sha512(mini).digest()[:32])
    key[0] &= 248
    key[31] &= 63
    key[31] |= 64
    return (int.from_bytes(key, "little") >> 3).to_bytes(32, "little")


def _chain_code(junction: str) -> bytes:
    """sp-core DeriveJunction: a u64 if it parses as one, else a SCALE string."""
    if junction.isdigit() and int(junction) < 2**64:
        enc = int(junction).to_bytes(8, "little")
    else:
        raw = junction.encode()
        n = len(raw)
        if n < 64:
            prefix = bytes([n << 2])
        elif n < 2**14:
            prefix = ((n << 2) | 1).to_bytes(2, "little")
        else:
            prefix = ((n << 2) | 2).to_bytes(4, "little")
        enc = prefix + raw
    if len(enc) > 32:
        return hashlib.blake2b(enc, digest_size=32).digest()
    return enc.ljust(32, b"\0")


def secret_scalar(uri: str) -> int:
    """sr25519 secret scalar of a dev URI made of hard junctions, e.g. //Node1//stash."""
    if not uri.startswith("//") or "/" in uri.replace("//", "\0").strip("\0"):
        raise ValueError(f"only hard-junction dev URIs are supported: {uri!r}")
    scalar = _expand_ed25519(DEV_SEED)
    for junction in uri[2:].split("//"):
        t = Transcript(b"SchnorrRistrettoHDKD")
        t.append_message(b"sign-bytes", b"")
        t.append_message(b"chain-code", _chain_code(junction))
        t.append_message(b"secret-key", scalar)
        scalar = _expand_ed25519(t.challenge_bytes(b"HDKD-hard", 32))
    return int.from_bytes(scalar, "little")


def public_key(uri: str) -> bytes:
    """sr25519 public key (32 bytes) of a dev URI."""
    return ristretto_encode(_mul(secret_scalar(uri), _base_point()))


L = 2**252 + 27742317777372353535851937790883648493  # ristretto group order


def sign(uri: str, message: bytes) -> bytes:
    """A 64-byte schnorrkel signature in the "substrate" signing context.

    The nonce is random (schnorrkel derives it from a transcript RNG); any
    nonce gives a valid signature.
    """
    x = secret_scalar(uri)
    pk = public_key(uri)
    t = Transcript(b"SigningContext")
    t.append_message(b"", b"substrate")
    t.append_message(b"sign-bytes", message)
    t.append_message(b"proto-name", b"Schnorr-sig")
    t.append_message(b"sign:pk", pk)
    r = int.from_bytes(os.urandom(64), "little") % L
    big_r = ristretto_encode(_mul(r, _base_point()))
    t.append_message(b"sign:R", big_r)
    k = int.from_bytes(t.challenge_bytes(b"sign:c", 64), "little") % L
    s = bytearray(((k * x + r) % L).to_bytes(32, "little"))
    s[31] |= 128  # schnorrkel's marker for non-legacy signatures
    return big_r + bytes(s)


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def ss58(pubkey: bytes, prefix: int = 42) -> str:
    data = bytes([prefix]) + pubkey
    data += hashlib.blake2b(b"SS58PRE" + data, digest_size=64).digest()[:2]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


# Funded by `substrate-contracts-node build-spec --dev` (chain_spec/dev.rs).
KNOWN = {
    "//Alice": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
    "//Alice//stash": "5GNJqTPyNqANBkUVMN1LPPrxXnFouWXoe2wNSmmEoLctxiZY",
    "//Bob": "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
    "//Bob//stash": "5HpG9w8EBLe5XCrbczpwq5TSXvedjrBGCwqxK1iQ7qUsSWFc",
    "//Charlie": "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y",
    "//Dave": "5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy",
    "//Eve": "5HGjWAeFDfFCWPsjFQdVV2Msvz2XtMktvgocEZcCj68kUMaw",
    "//Ferdie": "5CiPPseXPECbkjWCa6MnjNokrgYjMqmKndv2rSnekmSK2DjL",
}


def self_test() -> None:
    for uri, want in KNOWN.items():
        got = ss58(public_key(uri))
        if got != want:
            raise SystemExit(f"self-test failed: {uri} -> {got}, expected {want}")


def main(argv):
    if argv and argv[0] == "--self-test":
        self_test()
        argv = argv[1:]
    for uri in argv:
        pk = public_key(uri)
        print(uri, ss58(pk), "0x" + pk.hex())


if __name__ == "__main__":
    main(sys.argv[1:])
