"""Differential test of the C bot filter against the Rust reference.

Runs the built component (plugins/target/c/tally_plugin_bot_filter_c.wasm)
in wasmtime (the `wasmtime` package from PyPI: its component API, no WASI
linked, so a component importing anything would fail to instantiate), and
compares its verdicts with reference.rs (rules.rs compiled by rustc) on
hand-picked edge cases and random inputs. Also checks: a malformed batch
traps (as the Rust guest panics), an empty batch, the tag lists are empty,
and many batches on one instance under a memory limit (the arena is
reused, so memory does not grow: 4 MiB of batches under 512 KiB).

usage: python3 difftest.py COMPONENT REFERENCE_BINARY [N_RANDOM]
"""
import random
import struct
import subprocess
import sys

import wasmtime
from wasmtime import component as cm

WORDS = ["bot", "crawler", "spider", "headless", "curl/", "python-requests"]

EDGE_UAS = [
    b"", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    b"Googlebot/2.1", b"BOT", b"bOt", b"bo", b"b o t", b"robot", b"Bingbot", b"CRAWLER", b"crawle",
    b"Spider", b"spide", b"HeadlessChrome/124", b"headles", b"curl/8.5.0", b"CURL/", b"curl",
    b"curl /", b"python-requests/2.31", b"Python-Requests", b"python-request", b"python_requests",
    "botté".encode(), "ßbot".encode(), "Kbot".encode(), "\u212abot".encode(),  # Kelvin sign
    b"bot\xff", b"\xffbot", b"\xc0\xafbot", b"\xc1\xbfbot", b"bot\xed\xa0\x80", b"bot\xed\x9f\xbf",
    b"bot\xf4\x90\x80\x80", b"bot\xf4\x8f\xbf\xbf", b"bot\xe0\x80\x80", b"bot\xe0\xa0\x80",
    b"bot\xf0\x80\x80\x80", b"bot\xf0\x90\x80\x80", b"bot\xe2\x82", b"bot\xe2", b"bot\xf0\x9f\x98",
    b"bot\xc2", b"bot\x80", b"bot\xf5\x80\x80\x80", b"bot\xf8\x88\x80\x80\x80", b"bot\x00",
    b"\x00", "🤖bot".encode(), b"bot\xc2\xa0",
]

EDGE_IPS = [
    b"", b"192.0.2.1", b"192.0.2.0", b"192.0.2.255", b"192.0.3.1", b"192.0.1.255", b"198.51.100.7",
    b"198.51.101.7", b"203.0.113.9", b"203.0.114.9", b"10.0.0.1", b"8.8.8.8", b"+192.0.2.1",
    b"192.+0.2.1", b"192.0.2.+1", b"192.0.2.+", b"192.0.2.++1", b"192.0.2.-1", b"-192.0.2.1",
    b"192.0.2.", b".192.0.2.1", b"192.0.2.1.", b"192.0.2", b"192.0.2.1.5", b"192..2.1", b"...",
    b"0192.000.002.001", b"000000000000000000192.0.2.1", b"192.0.2.0255", b"192.0.2.256",
    b"192.0.2.1000", b"256.0.2.1", b"192.0.2.1 ", b" 192.0.2.1", b"192.0.2.1\x00", b"192.0.2.1\n",
    "１９２.0.2.1".encode(), b"192.0.2.1\xff", b"\xff192.0.2.1", b"192.0.2.1/24", b"192.0.2.0x1",
    b"2001:db8::1", b"::ffff:192.0.2.1", b"192.0.2.1:443", b"+", b"+.+.+.+", b"0.0.0.0", b"0.0.0",
    b"255.255.255.255", b"203.0.113.00000255", b"+203.+0.+113.+255", b"198.051.100.1", b"1.2.3.4",
    b"192.0.2.\xd9\xa1",  # an Arabic-Indic digit
]


def random_ua(rng):
    kind = rng.random()
    if kind < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
    parts = []
    for _ in range(rng.randrange(0, 5)):
        r = rng.random()
        if r < 0.35:
            w = rng.choice(WORDS)
            if rng.random() < 0.3:  # a near miss
                i = rng.randrange(len(w))
                w = w[:i] + w[i + 1:]
            parts.append("".join(c.upper() if rng.random() < 0.5 else c for c in w).encode())
        elif r < 0.7:
            parts.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz/ -.;()0123456789")
                                 for _ in range(rng.randrange(0, 12))).encode())
        elif r < 0.85:
            parts.append(rng.choice(["é", "ß", "\u212a", "🤖", "中", "\u0130"]).encode())
        else:
            parts.append(bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randrange(1, 4))))
    return b"".join(parts)


def random_ip(rng):
    kind = rng.random()
    if kind < 0.25:
        return bytes(rng.choice(b"0123456789.+-") for _ in range(rng.randrange(0, 18)))
    if kind < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 16)))
    nets = [(192, 0, 2), (198, 51, 100), (203, 0, 113), (192, 0, 3), (10, 1, 2), (198, 51, 101)]
    octets = [str(o) for o in rng.choice(nets)] + [str(rng.randrange(0, 300))]
    for i in range(4):
        r = rng.random()
        if r < 0.05:
            octets[i] = "+" + octets[i]
        elif r < 0.1:
            octets[i] = "0" * rng.randrange(1, 5) + octets[i]
        elif r < 0.12:
            octets[i] = ""
    s = ".".join(octets)
    r = rng.random()
    if r < 0.05:
        s += "."
    elif r < 0.08:
        s += ".1"
    elif r < 0.1:
        s = s.rsplit(".", 1)[0]
    return s.encode()


def strings(items):
    ends, total = [], 0
    for s in items:
        total += len(s)
        ends.append(total)
    r = cm.Record()
    setattr(r, "bytes", b"".join(items))
    setattr(r, "ends", ends)
    return r


def batch(uas, ips):
    n = len(uas)
    b = cm.Record()
    for name in ["ad-id", "campaign-id", "ts-ms", "cost-micros"]:
        setattr(b, name, list(range(n)))
    for name in ["click-id", "user-id", "country", "region"]:
        setattr(b, name, strings([b""] * n))
    setattr(b, "ip", strings(ips))
    setattr(b, "user-agent", strings(uas))
    setattr(b, "attr-ends", [0] * n)
    setattr(b, "attr-keys", strings([]))
    setattr(b, "attr-values", strings([]))
    return b


class Plugin:
    def __init__(self, path, memory_limit=None):
        self.engine = wasmtime.Engine()
        self.component = cm.Component.from_file(self.engine, path)
        self.memory_limit = memory_limit
        self.new_instance()

    def new_instance(self):
        self.store = wasmtime.Store(self.engine)
        if self.memory_limit:
            self.store.set_limits(memory_size=self.memory_limit)
        # An empty linker: the component must import nothing.
        instance = cm.Linker(self.engine).instantiate(self.store, self.component)
        self.func = instance.get_func(self.store, "filter")

    def filter(self, b):
        v = self.func(self.store, b)
        self.func.post_return(self.store)
        return v


def reference(binary, uas, ips):
    data = b"".join(struct.pack("<I", len(u)) + u + struct.pack("<I", len(i)) + i for u, i in zip(uas, ips))
    out = subprocess.run([binary], input=data, stdout=subprocess.PIPE, check=True).stdout
    return list(struct.unpack("<%dH" % len(uas), out))


def main():
    path, ref_bin = sys.argv[1], sys.argv[2]
    n_random = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
    rng = random.Random(20240611)
    plugin = Plugin(path, memory_limit=2 << 20)
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL", name, detail)

    # Every edge-case User-Agent with every edge-case IP, then random pairs.
    uas = [u for u in EDGE_UAS for _ in EDGE_IPS]
    ips = [i for _ in EDGE_UAS for i in EDGE_IPS]
    for _ in range(n_random):
        uas.append(random_ua(rng))
        ips.append(random_ip(rng) if rng.random() < 0.9 else rng.choice(EDGE_IPS))
    want = reference(ref_bin, uas, ips)
    got, size = [], 1
    at = 0
    while at < len(uas):  # batches of varied size on one instance
        size = rng.choice([1, 7, 64, 256, 1024, 4096])
        v = plugin.filter(batch(uas[at:at + size], ips[at:at + size]))
        check("tags empty", v.__dict__["tag-click"] == [] and v.__dict__["tag-keys"].bytes == b""
              and v.__dict__["tag-keys"].ends == [] and v.__dict__["tag-values"].bytes == b""
              and v.__dict__["tag-values"].ends == [])
        check("one code per click", len(v.codes) == len(uas[at:at + size]))
        got.extend(v.codes)
        at += size
    diffs = [(u, i, w, g) for u, i, w, g in zip(uas, ips, want, got) if w != g]
    for u, i, w, g in diffs[:20]:
        print("DIFF ua=%r ip=%r rust=%d c=%d" % (u, i, w, g))
    check("verdicts equal the Rust reference on %d clicks" % len(uas), not diffs, "%d differ" % len(diffs))
    counts = {c: want.count(c) for c in sorted(set(want))}
    print("clicks: %d, verdicts by code (reference): %s" % (len(uas), counts))

    check("empty batch", plugin.filter(batch([], [])).codes == [])

    # About 4 MiB of batches through one instance limited to 512 KiB of
    # memory: passes only if the memory of each call is reused by the next.
    small = Plugin(path, memory_limit=512 << 10)
    ua = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) " * 10
    big = batch([ua] * 128, [b"203.0.113.7"] * 128)  # about 110 KiB
    try:
        for _ in range(40):
            codes = small.filter(big).codes
        check("memory reused across calls", codes == [2] * 128)
    except wasmtime.WasmtimeError as e:
        check("memory reused across calls", False, str(e).splitlines()[0])

    # Malformed batches trap, like the Rust guest's panic; then a new instance works.
    bad = batch([b"a", b"b"], [b"1.2.3.4", b"192.0.2.1"])
    bad.ip.ends = [7]  # fewer offsets than clicks
    bad2 = batch([b"a"], [b"1.2.3.4"])
    bad2.__dict__["user-agent"].ends = [5]  # past the end of the bytes
    for name, b in [("short ends", bad), ("end past bytes", bad2)]:
        try:
            plugin.filter(b)
            check("malformed batch traps: " + name, False, "no trap")
        except wasmtime.WasmtimeError:
            check("malformed batch traps: " + name, True)
        plugin.new_instance()
    check("after a trap", plugin.filter(batch([b"curl/8"], [b""])).codes == [1])

    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
