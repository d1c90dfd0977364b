#!/usr/bin/env python3
"""wsnode's resident memory per idle WebSocket connection, measured with a
client wsbench did not write: Python's `websockets` (asyncio), which offers
permessage-deflate and sends its own handshake headers.

It starts target/release/wsnode on 127.0.0.1:0 as a child, reads its VmRSS,
opens N connections that each read their welcome frame and stay idle, reads
VmRSS again and prints the growth per connection; it repeats this with a
fresh node for each run and prints every run, the median and the worst.
Only loopback is contacted; N is bounded by the open-file limit.

    benches/idle/idle_python.sh 10000 3     # sets up the venv, then runs this
"""

import asyncio
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import websockets


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for the node")


def start_node(binary: str):
    node = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--ping-interval", "10m", "--idle-timeout", "20m"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn,server=info", "NO_COLOR": "1"},
        text=True,
    )
    deadline = time.time() + 20
    for line in node.stdout:
        if "addr=" in line:
            addr = line.split("addr=", 1)[1].split()[0]
            # Drain the log so the node never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in node.stdout], daemon=True).start()
            return node, addr
        if time.time() > deadline:
            break
    node.kill()
    raise RuntimeError("wsnode did not print its address")


async def measure(binary: str, conns: int) -> tuple[int, int]:
    node, addr = start_node(binary)
    try:
        await asyncio.sleep(1.5)
        before = rss_kib(node.pid)
        gate = asyncio.Semaphore(256)

        async def one(i: int):
            async with gate:
                ws = await websockets.connect(
                    f"ws://{addr}/ws/chat?session_id=py_idle_{i}",
                    ping_interval=None,
                    open_timeout=60,
                    max_size=1 << 16,
                )
                await asyncio.wait_for(ws.recv(), 60)  # the welcome frame
                return ws

        open_ = await asyncio.gather(*(one(i) for i in range(conns)))
        await asyncio.sleep(2)
        after = rss_kib(node.pid)
        for ws in open_:
            ws.transport.abort()
        return before, after
    finally:
        node.kill()
        node.wait()


def main():
    conns = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    runs = max(1, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    here = os.path.dirname(os.path.abspath(__file__))
    binary = os.path.join(here, "..", "..", "target", "release", "wsnode")
    if not os.path.exists(binary):
        sys.exit("build it first: cargo build --release -p server")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, conns + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if conns + 64 > want:
        sys.exit(f"{conns} connections need an open-file limit of {conns + 64} (hard limit {hard})")
    per = []
    for run in range(1, runs + 1):
        before, after = asyncio.run(measure(binary, conns))
        b = max(0, after - before) * 1024 / conns
        per.append(b)
        print(f"run {run}: RSS {before} KiB -> {after} KiB with {conns} idle connections "
              f"(python websockets {websockets.__version__}): {b:.0f} bytes per connection")
    per.sort()
    print(f"RSS growth per idle connection over {runs} runs: median {statistics.median(per):.0f} bytes "
          f"({statistics.median(per) / 1024:.2f} KiB), worst {per[-1]:.0f} bytes ({per[-1] / 1024:.2f} KiB)")


if __name__ == "__main__":
    main()
