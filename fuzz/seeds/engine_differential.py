#!/usr/bin/env python3
"""Writes the seed corpus of the engine_differential fuzz target: command
sequences that reach each capacity limit, the collars, the key limits,
stalls and every sweep.

The input is `Input { room: u8, ops: Vec<Op> }` read with `arbitrary` (1.x):
`room`, then per op a byte whose low bit says "an op follows", a
little-endian u32 choosing the variant ((x * variants) >> 32) and the fields
in order. Keep OPS and the fields in step with fuzz_targets/engine_differential.rs.

    python3 fuzz/seeds/engine_differential.py    # from the repository root
"""
import os
import struct

OPS = ["New", "Cancel", "Replace", "Mass", "CancelOnDisconnect", "CancelForRevocation",
       "CancelForKey", "Limits", "Tick"]


def variant(i, n):
    return struct.pack("<I", -(-(i << 32) // n))


def op(name, *fields):
    out = variant(OPS.index(name), len(OPS))
    for f in fields:
        out += f if isinstance(f, bytes) else bytes([f & 0xFF])
    return out


def near(p):
    return variant(0, 2) + bytes([p & 0xFF])


def extreme(e):
    return variant(1, 2) + bytes([e])


BUY, SELL, DAY, IOC = 1, 2, 0, 1


def new(s, key, cl, instr, side, price, qty, tif=DAY):
    return op("New", s, key, cl, instr, side, 1, tif, price, qty)


def replace(s, cl, orig, instr, price, qty):
    return op("Replace", s, cl, orig, instr, price, qty)


def limits(*specs):
    specs = list(specs) + [(4, 0, 0)] * (3 - len(specs))
    return op("Limits", b"".join(bytes(x) for x in specs))


def seed(room, *ops):
    return bytes([room]) + b"".join(b"\x01" + o for o in ops) + b"\x00"


SEEDS = {
    # Instrument 1: reference 1000, collar 5 %: inside, outside, then trades.
    "collar": seed(0, new(0, 0, 1, 1, BUY, near(40), 5), new(1, 0, 1, 1, BUY, near(60), 5),
                   new(2, 1, 1, 1, SELL, near(-20), 3), new(3, 1, 2, 1, SELL, near(-70), 3),
                   replace(0, 2, 1, 1, near(90), 5), op("Tick")),
    # Instrument 2: no reference until the first trade; instrument 3: prices <= 0.
    "no-reference-and-negative": seed(3, new(0, 0, 1, 2, BUY, near(100), 5),
                                      new(2, 0, 2, 2, SELL, near(-100), 2),
                                      new(2, 0, 3, 2, SELL, near(120), 2),
                                      new(1, 1, 1, 3, BUY, near(-80), 2),
                                      new(3, 1, 1, 3, SELL, near(-96), 4),
                                      new(0, 2, 4, 3, BUY, extreme(1), 1)),
    # Three levels a side, then a fourth price: ENGINE_REJECT; a replace into it.
    "levels-full": seed(0, *[new(0, 0, i, 1, BUY, near(-i * 3), 1) for i in range(3)],
                        new(0, 0, 5, 1, BUY, near(-20), 1), replace(0, 6, 1, 1, near(-30), 2),
                        new(1, 0, 1, 1, SELL, near(-20), 1, IOC)),
    # Eight resting orders fill the pool; a crossing order still fits.
    "pool-full": seed(4, *[new(i % 5, i % 2, i, 1 + i % 2, BUY, near(-i), 1) for i in range(8)],
                      new(2, 1, 9, 1, BUY, near(-40), 1), new(3, 1, 9, 1, SELL, near(-7), 2)),
    # Two keys rest; a third key's order has no record: ENGINE_REJECT.
    "keys-full": seed(0, new(0, 0, 1, 1, BUY, near(-5), 1), new(1, 1, 1, 1, BUY, near(-6), 1),
                      new(2, 2, 1, 1, BUY, near(-7), 1), new(2, 2, 2, 1, SELL, near(-5), 1, IOC),
                      new(2, 2, 3, 1, BUY, near(-7), 1)),
    # Key limits: notional at the fill price, open notional, changed mid-run.
    "key-limits": seed(0, limits((1, 2, 1), (2, 0, 2)),
                       new(0, 1, 1, 1, BUY, near(0), 2), new(1, 1, 2, 1, BUY, near(0), 1),
                       new(2, 2, 1, 1, SELL, near(-10), 3), limits((1, 0, 0)),
                       new(1, 1, 3, 1, BUY, near(0), 2), replace(1, 4, 3, 1, near(5), 9)),
    # Sweeps: mass cancel by side, cancel-on-disconnect, revocation, key kill.
    "sweeps": seed(3, *[new(i % 2, i % 3, i, 1 + i % 3, 1 + i % 2, near(-30 + i), 2) for i in range(7)],
                   op("Mass", 0, 7, 0, 1), op("CancelOnDisconnect", 1),
                   op("CancelForRevocation", 2, 0), op("CancelForKey", 1, 1, 9),
                   op("CancelForKey", 0, 3, 1)),
    # Replace: keep priority, lose it, cross, duplicate id, unknown order.
    "replaces": seed(0, new(0, 0, 1, 1, BUY, near(0), 5), new(0, 0, 2, 1, BUY, near(0), 5),
                     replace(0, 1, 1, 1, near(0), 3), replace(0, 3, 2, 1, near(0), 7),
                     replace(0, 2, 3, 1, near(0), 7), replace(0, 4, 9, 1, near(0), 7),
                     new(1, 0, 1, 1, SELL, near(2), 4), replace(1, 5, 1, 1, near(0), 4)),
    # Huge quantities and extreme prices.
    "extremes": seed(0, new(0, 0, 1, 2, BUY, extreme(0), 255), new(1, 0, 1, 2, SELL, extreme(3), 254),
                     new(0, 0, 2, 2, SELL, extreme(4), 251), op("Tick"),
                     new(1, 0, 2, 3, BUY, extreme(2), 252)),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(__file__), "..", "corpus", "engine_differential")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {os.path.normpath(out)}")
