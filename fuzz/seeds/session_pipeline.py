#!/usr/bin/env python3
"""Writes the seed corpus of the session_pipeline fuzz target.

The target reads `Vec<Op>` with `arbitrary` (1.x): each element is a byte
whose low bit says "another op follows", then the op: a little-endian u32
that picks the variant ((x * variants) >> 32), then its fields in order
(u8/i8/bool one byte, u16 two). Keep VARIANTS and the field order in step
with `enum Op`, `OrderSpec` and `Bad` in fuzz_targets/session_pipeline.rs.

    python3 fuzz/seeds/session_pipeline.py    # from the repository root
"""
import os
import struct

OPS = ["Connect", "Logon", "ReplayLogon", "Order", "Bad", "Deliver", "Reading",
       "PeerClose", "Tick", "ClockBack", "EngineRunning", "Reload", "Revoke", "Inject"]
ORDER_KINDS = ["New", "Cancel", "Replace", "Mass", "Heartbeat", "Logout"]
BADS = ["FlipBit", "Tag", "ShortTag", "LongTag", "Length", "Duplicate", "Skip", "Cross",
        "Raw", "Logon"]


def variant(i, n):
    return struct.pack("<I", -(-(i << 32) // n))


def op(name, *fields):
    return variant(OPS.index(name), len(OPS)) + bytes(f & 0xFF for f in fields)


def spec(kind, cl_mode=0, orig=0, price=0, qty=5, side=0, tif=0, instrument=0):
    return variant(ORDER_KINDS.index(kind), len(ORDER_KINDS)) + bytes(
        x & 0xFF for x in (cl_mode, orig, price, qty, side, tif, instrument))


def order(conn, kind, deliver=0, **kw):
    return op("Order", conn) + spec(kind, **kw) + bytes([deliver])


def bad(conn, which, args=b"", deliver=0):
    return op("Bad", conn) + variant(BADS.index(which), len(BADS)) + args + spec("New") + bytes([deliver])


def ops(*items):
    return b"".join(b"\x01" + i for i in items) + b"\x00"


# Keys: 0 trader, 1 cancel-only, 2 slow (10/s, one session), 3 risk (allow list, limits),
# 4 sandbox, 5 unknown. Peers: 0 and 1 in 192.0.2.0/24, 2 elsewhere, 3 and 4 one IPv6 /64.
def connect(key=0, peer=0, rotated=0):
    return op("Connect", key, rotated, peer)


def logon(conn, flags=0):
    # keepalive 1000 ms, flags 0 or 1 (cancel-on-disconnect), production, on time
    return op("Logon", conn, 0, flags, 0, 0, 0)


BUY, SELL = 0, 1  # side indices
TWO_TRADERS = [connect(0, 0), connect(0, 1), logon(0), logon(1, flags=1)]
SEEDS = {
    "trade-and-cod": ops(*TWO_TRADERS,
                         order(0, "New", price=0, qty=5, side=BUY),
                         order(1, "New", price=0, qty=3, side=SELL),
                         order(1, "New", price=8, qty=4, side=SELL),
                         order(0, "Replace", orig=1, price=4, qty=9),
                         order(1, "Mass"),
                         op("PeerClose", 1), op("Tick", 1)),
    "corrupt-after-logon": ops(*TWO_TRADERS,
                               order(0, "New", qty=2),
                               bad(0, "FlipBit", bytes([30, 3])),
                               order(1, "New", qty=2, side=SELL),
                               bad(1, "Duplicate"),
                               op("Tick", 4)),
    "gap-and-cross": ops(*TWO_TRADERS,
                         order(0, "New"),
                         bad(1, "Cross", bytes([0])),
                         bad(0, "Skip"),
                         order(0, "New"),
                         op("Tick", 2)),
    "tags-and-lengths": ops(connect(0, 0), logon(0),
                            order(0, "Heartbeat"),
                            bad(0, "ShortTag", deliver=6)),
    "long-tag": ops(connect(0, 0), logon(0), order(0, "New", deliver=10),
                    bad(0, "LongTag", bytes([7]))),
    "lying-length": ops(connect(0, 3), logon(0), bad(0, "Length", struct.pack("<H", 4000))),
    "revoke-resting": ops(*TWO_TRADERS,
                          order(0, "New", qty=5),
                          order(1, "New", qty=5, side=SELL, price=40),
                          op("Revoke", 0), op("Tick", 2)),
    "reloads": ops(*TWO_TRADERS, connect(3, 0), logon(2, flags=1),
                   order(0, "New"), order(2, "New", qty=30),
                   op("Reload", 1), order(0, "New"),
                   op("Reload", 3), op("Reload", 4), op("Tick", 3), op("Reload", 0)),
    "engine-stall": ops(*TWO_TRADERS, op("EngineRunning", 0),
                        *[order(0, "New", qty=1, price=i) for i in range(16)],
                        order(0, "Cancel", orig=3), order(0, "Mass"),
                        op("PeerClose", 1), op("Tick", 1), op("EngineRunning", 1), op("Tick", 1)),
    "slow-consumer": ops(*TWO_TRADERS, op("Reading", 0, 0, 0),
                         *[order(0, "New", qty=1, price=i) for i in range(24)],
                         *[order(1, "New", qty=1, side=SELL, price=-40) for _ in range(8)],
                         op("Tick", 7), op("Tick", 4)),
    "short-reads": ops(*TWO_TRADERS, op("Reading", 0, 1, 5),
                       order(0, "New"), order(1, "New", side=SELL), op("Tick", 1)),
    "replayed-logon": ops(connect(0, 0), logon(0), op("ReplayLogon", 0, 1), op("Tick", 1)),
    "throttle": ops(connect(2, 0), logon(0),
                    *[order(0, "New", qty=1) for _ in range(12)], op("Tick", 1)),
    "slab-full": ops(*[connect(k % 2, k % 3) for k in range(6)], logon(0), logon(1),
                     op("Tick", 4), op("Tick", 4), logon(4)),
    "heartbeat-timeout": ops(connect(0, 0), logon(0, flags=1), order(0, "New"),
                             op("Tick", 6), op("Tick", 6)),
    "clock-back": ops(*TWO_TRADERS, order(0, "New"), op("ClockBack", 3), order(1, "New"),
                      op("Tick", 5), op("ClockBack", 2), op("Tick", 2)),
    "inject-stale": ops(*TWO_TRADERS, op("PeerClose", 1), op("Inject", 1, 0, 1),
                        op("Inject", 0, 1, 0), op("Inject", 0, 2, 2), order(0, "New"),
                        order(0, "New")),
    "wrong-logons": ops(connect(4, 0), logon(0), connect(5, 1), logon(1), connect(3, 2),
                        logon(2), connect(0, 0), op("Logon", 3, 3, 4, 3, 3, 1), op("Tick", 4)),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(__file__), "..", "corpus", "session_pipeline")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {os.path.normpath(out)}")
