"""The search for frame boundaries in a stream that has no anchor, advanced as bytes arrive.

Every offset of the search buffer is a candidate start. From each, headers are chained:
a WhatsApp hop needs a first byte 0x00 and a length of 17..65,535 (Noise) or a first byte
0x80/0xC0 (WA 1.x, flag nibble); a TLS hop a record header (type 20-24, version 3.1-3.4,
length 1..2^14+2048). A chain is judged on its complete frames (k) and on how many of them
end exactly where a captured segment ended (a): ciphertext is uniformly random, so a wrong
start passes a WhatsApp hop with p ~ 3/256 (counted as 7 bits) and ends on a segment end
with p ~ 1/1000 (10 bits). It locks at LOCK_BITS with at least MIN_CHAIN frames; TLS
headers carry ~21 bits each, so two records lock. The earliest start that locks wins.

Work is incremental and compiled: each byte gets its hop table entry once, a chain is
advanced only when its next header or frame end has arrived, and a chain that meets an
impossible header is dropped for good. The lock found therefore does not depend on how the
stream was segmented into calls (parts, batches), only on the bytes and the segment ends.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from flowscope._jit import configure_cache

configure_cache()

WA_HEADER, TLS_HEADER = 3, 5
NOISE_MIN = 17
TLS_RECORD_MAX = (1 << 14) + 2048
FRAME_BITS, END_BITS, LOCK_BITS, MIN_CHAIN = 7, 10, 34, 2
CHAIN_HOPS = 6
WA, TLS = "wa", "tls"
FORMS = (WA, TLS)
# S[]: buffer size, offsets tried per form, live chains per form, segment ends recorded
S_SIZE, S_N0, S_N1, S_C0, S_C1, S_ENDS = 0, 1, 2, 3, 4, 5


@njit(cache=True, inline="always")
def _hop(buf, o, form):
    """(valid, next offset, WA 1.x flag) of a header at offset o."""
    if form == 0:
        b0 = buf[o]
        n = (np.int64(buf[o + 1]) << 8) | buf[o + 2]
        flagged = b0 == 0x80 or b0 == 0xC0
        ok = (b0 == 0 and n >= NOISE_MIN) or (flagged and n >= 1)
        return ok, o + WA_HEADER + n, flagged
    n = (np.int64(buf[o + 3]) << 8) | buf[o + 4]
    ok = 20 <= buf[o] <= 24 and buf[o + 1] == 3 and 1 <= buf[o + 2] <= 4 and 1 <= n <= TLS_RECORD_MAX
    return ok, o + TLS_HEADER + n, False


@njit(cache=True, inline="always")
def _meets(form, k, a):
    if k < MIN_CHAIN:
        return False
    return form == 1 or FRAME_BITS * k + END_BITS * a >= LOCK_BITS


@njit(cache=True)
def _extend(buf, size, chains, S, ends, out):
    """New offsets become chains, every chain advances over what has arrived; out =
    (start, form, legacy) of the earliest lock, start -1 without one.
    chains[form, field, i]: start, next header, frames, frames ending on a segment end, WA 1.x."""
    n_ends = S[S_ENDS]
    ends[n_ends] = size
    n_ends += 1
    S[S_ENDS] = n_ends
    S[S_SIZE] = size
    out[0] = -1
    for form in range(2):
        header = WA_HEADER if form == 0 else TLS_HEADER
        n, count = S[S_N0 + form], S[S_C0 + form]
        for o in range(n, size - header + 1):
            if _hop(buf, o, form)[0]:
                chains[form, 0, count] = o
                chains[form, 1, count] = o
                chains[form, 2, count] = 0
                chains[form, 3, count] = 0
                chains[form, 4, count] = 0
                count += 1
        n = max(n, size - header + 1)
        S[S_N0 + form] = n
        kept = 0
        for c in range(count):
            p, k, a, leg = chains[form, 1, c], chains[form, 2, c], chains[form, 3, c], chains[form, 4, c]
            dead = False
            while k < CHAIN_HOPS and p < n:
                ok, e, fl = _hop(buf, p, form)
                if not ok:
                    dead = True
                    break
                if e > size:
                    break
                k += 1
                j = np.searchsorted(ends[:n_ends], e)
                a += 1 if j < n_ends and ends[j] == e else 0
                leg |= fl
                p = e
            meets = _meets(form, k, a)
            if dead or (k >= CHAIN_HOPS and not meets):
                continue
            start = chains[form, 0, c]
            if meets and (out[0] < 0 or start < out[0]):
                out[0], out[1], out[2] = start, form, leg
            chains[form, 0, kept] = start
            chains[form, 1, kept] = p
            chains[form, 2, kept] = k
            chains[form, 3, kept] = a
            chains[form, 4, kept] = leg
            kept += 1
        S[S_C0 + form] = kept


class Search:
    """The search over one buffer: call `extend` after bytes were appended (the buffer then
    ends where a captured segment ended), `slide` after bytes were dropped from its front.
    Its state is the live chains and the segment ends: a few bytes per candidate start."""

    def __init__(self):
        self.S = np.zeros(6, dtype=np.int64)
        self.out = np.zeros(3, dtype=np.int64)
        self.chains = np.empty((2, 5, 64), np.int64)
        self.ends = np.empty(64, np.int64)

    def _room(self, size: int) -> None:
        """Room for a chain from every new offset, and for one more segment end."""
        S = self.S
        need = int(max(S[S_C0], S[S_C1])) + size - int(min(S[S_N0], S[S_N1])) + 1
        if need > self.chains.shape[2]:
            chains = np.empty((2, 5, max(need, 2 * self.chains.shape[2])), np.int64)
            chains[:, :, :self.chains.shape[2]] = self.chains
            self.chains = chains
        if S[S_ENDS] + 1 > len(self.ends):
            self.ends = np.concatenate([self.ends, np.empty(len(self.ends), np.int64)])

    def extend(self, data: bytearray) -> tuple[int, str, bool] | None:
        """(offset, form WA or TLS, WA 1.x flag seen) of a lock in `data` (the whole buffer), or None."""
        size = len(data)
        self._room(size)
        _extend(np.frombuffer(data, dtype=np.uint8), size, self.chains, self.S, self.ends, self.out)
        if self.out[0] < 0:
            return None
        return int(self.out[0]), FORMS[int(self.out[1])], bool(self.out[2])

    def slide(self, drop: int) -> None:
        S = self.S
        for form in range(2):
            count = int(S[S_C0 + form])
            ch = self.chains[form, :, :count].copy()
            ch[0:2] -= drop
            ch = ch[:, ch[0] >= 0]
            self.chains[form, :, :ch.shape[1]] = ch
            S[S_N0 + form], S[S_C0 + form] = max(int(S[S_N0 + form]) - drop, 0), ch.shape[1]
        ends = self.ends[:int(S[S_ENDS])] - drop
        ends = ends[ends > 0]
        self.ends[:len(ends)] = ends
        S[S_ENDS] = len(ends)
        S[S_SIZE] -= drop


def lock_point(data: bytes, ends: list[int]) -> tuple[int, str, bool] | None:
    """The lock in `data` searched at once, with captured segments ending at `ends`."""
    search = Search()
    for end in sorted({e for e in ends if 0 < e < len(data)} | {len(data)}):
        got = search.extend(bytearray(data[:end]))
        if got is not None:
            return got
    return None
