#!/usr/bin/env python3
"""Writes a large WASI module straight in the binary format (no toolchain, seconds):
   tests/gen_big_wasm.py OUT FUNCS OPS [CALLS]
FUNCS functions of type (i32)->i32, each the same OPS rounds of add/mul/xor/rotl on its argument;
_start calls CALLS of them (default all) in a chain and prints "big FUNCS ok\\n" with fd_write. A module of
about FUNCS * OPS * 9 bytes."""
import sys


def leb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def vec(items):
    return leb(len(items)) + b"".join(items)


def section(sid, payload):
    return bytes([sid]) + leb(len(payload)) + payload


def name(s):
    return leb(len(s)) + s.encode()


def main():
    out, funcs, ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    calls = int(sys.argv[4]) if len(sys.argv) > 4 else funcs  # how many _start calls
    I32 = 0x7F
    types = [b"\x60" + vec([]) + vec([]),                       # 0: () -> ()
             b"\x60" + vec([bytes([I32])]) + vec([bytes([I32])]),  # 1: (i32) -> i32
             b"\x60" + vec([bytes([I32])] * 4) + vec([bytes([I32])])]  # 2: fd_write
    imports = [name("wasi_snapshot_preview1") + name("fd_write") + b"\x00" + leb(2)]
    funcsec = vec([leb(1)] * funcs + [leb(0)])
    memory = vec([b"\x00" + leb(1)])
    exports = vec([name("memory") + b"\x02" + leb(0), name("_start") + b"\x00" + leb(funcs + 1)])
    # One body for every function (V8 compiles each on its own): generating stays fast.
    code = bytearray(b"\x20\x00")  # local.get 0
    for k in range(ops):
        c = (k * 104729 + 7919) & 0x7FFFFFFF
        code += b"\x41" + sleb(c) + b"\x6a"            # i32.const c; i32.add
        code += b"\x41" + sleb((c | 1) & 0xFFFF) + b"\x6c"  # i32.const; i32.mul
        code += b"\x41" + sleb(k % 31 + 1) + b"\x77"    # i32.const; i32.rotl
    code += b"\x0b"
    body = vec([]) + bytes(code)
    bodies = [leb(len(body)) + body] * funcs
    msg = ("big %d ok\n" % funcs).encode()
    start = bytearray(b"\x41\x01")
    for f in range(calls):
        start += b"\x10" + leb(f * funcs // calls + 1)  # call f, spread over the module
    start += b"\x1a"  # drop
    start += b"\x41\x01\x41\x00\x41\x01\x41\x08\x10\x00\x1a\x0b"  # fd_write(1, 0, 1, 8); drop
    body = vec([]) + bytes(start)
    bodies.append(leb(len(body)) + body)
    iov = (16).to_bytes(4, "little") + len(msg).to_bytes(4, "little")
    data = vec([b"\x00\x41\x00\x0b" + vec([bytes([b]) for b in iov + bytes(8) + msg])])
    module = (b"\x00asm\x01\x00\x00\x00" + section(1, vec(types)) + section(2, vec(imports)) +
              section(3, funcsec) + section(5, memory) + section(7, exports) +
              section(10, vec(bodies)) + section(11, data))
    with open(out, "wb") as fh:
        fh.write(module)


if __name__ == "__main__":
    main()
