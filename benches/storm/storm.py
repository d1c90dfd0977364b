"""A storm of TCP connects at once against a loopback port, each timed.

Usage: python3 benches/storm/storm.py PORT N   (N at most 19,000)

Not loadgen on purpose: loadgen keeps at most 128 connects in flight so
that it never overflows a server's accept queue; this shows what a client
that does not (a browser crowd, k6) meets. Only 127.0.0.1 is contacted.
"""
import asyncio
import sys
import time


async def one(port):
    t = time.monotonic()
    _, w = await asyncio.open_connection("127.0.0.1", port)
    return time.monotonic() - t, w


async def main(port, n):
    res = await asyncio.gather(*[one(port) for _ in range(n)], return_exceptions=True)
    ok = [r for r in res if not isinstance(r, Exception)]
    ds = sorted(r[0] for r in ok)
    if ds:
        print(f"{len(ok)}/{n} connected; p50 {ds[len(ds) // 2] * 1000:.1f} ms "
              f"p99 {ds[int(len(ds) * .99)] * 1000:.1f} ms max {ds[-1] * 1000:.1f} ms")
    else:
        print(f"0/{n} connected: {res[0]}")
    for r in ok:
        r[1].close()


if __name__ == "__main__":
    port, n = int(sys.argv[1]), int(sys.argv[2])
    if not (0 < port < 65536 and 0 < n <= 19000):
        sys.exit("usage: storm.py PORT N (1 <= N <= 19000)")
    asyncio.run(main(port, n))
