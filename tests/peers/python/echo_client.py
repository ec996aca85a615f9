#!/usr/bin/env python3
"""Interop peer: a python-websockets client that checks an echo server.

    python3 echo_client.py ws://127.0.0.1:PORT/ [--deflate] [--require-deflate] [--ca PEM] [--timeout SECONDS]

Sends text (ASCII, non-ASCII, emoji, empty, 64 KiB), binary (empty, every byte value, 1 MiB),
one fragmented message and a pipelined burst, and checks that every echo comes back identical,
of the same type and in order. Then pings and awaits the pong, closes with 1000 and checks that
the server answered the close with 1000.

Exit status 0 on success; otherwise 1, with what failed on stdout. Needs `websockets` >= 14
(the asyncio API); compression is not offered unless --deflate is given. Prints the negotiated
Sec-WebSocket-Extensions as `negotiated extensions: ...`; --require-deflate fails unless it starts
with permessage-deflate. For wss://, --ca PEM trusts that CA (default: the system's).
"""
import argparse
import asyncio
import random
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

MiB = 1 << 20


def messages():
    """(label, payload) pairs: str payloads go as text frames, bytes as binary frames."""
    rng = random.Random(6455)
    # 64 KiB of text mixing 1-, 2-, 3- and 4-byte UTF-8 sequences, so that code points straddle
    # any frame or read boundary; padded with ASCII to exactly 65536 bytes.
    unit = "aé€🌍"  # 1 + 2 + 3 + 4 bytes
    big_text = unit * (65536 // 10)
    big_text += "x" * (65536 - len(big_text.encode()))
    assert len(big_text.encode()) == 65536
    return [
        ("text ascii", "hello"),
        ("text non-ascii", "héllo wörld, ça va? Ωμέγα, 日本語"),
        ("text emoji", "🌍🚀👩‍💻 and a 4-byte char at the end 🎉"),
        ("text empty", ""),
        ("text 125 bytes (largest 7-bit length)", "a" * 125),
        ("text 126 bytes (first 16-bit length)", "b" * 126),
        ("text 64 KiB mixed UTF-8", big_text),
        ("binary empty", b""),
        ("binary every byte value", bytes(range(256))),
        ("binary 65536 bytes (first 64-bit length)", rng.randbytes(65536)),
        ("binary 1 MiB", rng.randbytes(MiB)),
    ]


def describe(payload):
    kind = "text" if isinstance(payload, str) else "binary"
    size = len(payload.encode()) if isinstance(payload, str) else len(payload)
    head = payload[:40]
    return f"{kind} of {size} bytes starting {head!r}"


async def expect_echo(ws, label, sent, failures):
    got = await ws.recv()
    if type(got) is not type(sent):
        failures.append(f"{label}: sent {describe(sent)}, got {describe(got)} (wrong type)")
    elif got != sent:
        a = sent.encode() if isinstance(sent, str) else sent
        b = got.encode() if isinstance(got, str) else got
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        failures.append(f"{label}: sent {describe(sent)}, got {describe(got)}, first difference at byte {at}")


async def run(url, deflate, require_deflate=False, ca=None):
    failures = []
    tls = {"ssl": ssl.create_default_context(cafile=ca)} if ca else {}
    async with connect(url, compression="deflate" if deflate else None, max_size=64 * MiB,
                       ping_interval=None, proxy=None, open_timeout=10, close_timeout=10, **tls) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        print(f"negotiated extensions: {extensions or 'none'}", flush=True)
        if require_deflate and not (extensions or "").startswith("permessage-deflate"):
            failures.append(f"extensions: expected permessage-deflate, the server answered {extensions!r}")
        # One at a time: send, then await the echo.
        for label, payload in messages():
            await ws.send(payload)
            await expect_echo(ws, label, payload, failures)

        # A fragmented text message (three frames, the first ending inside nothing special);
        # the echo may come back fragmented or not, but must be one message.
        parts = ["frag", "mént", "ed 🌍"]
        await ws.send(parts)
        await expect_echo(ws, "text fragmented in 3 frames", "".join(parts), failures)
        bparts = [b"\x00\x01", b"", b"\xff" * 1000]
        await ws.send(bparts)
        await expect_echo(ws, "binary fragmented in 3 frames", b"".join(bparts), failures)

        # Pipelined: 100 messages sent before reading any echo; order must hold.
        burst = [f"burst {i} é" if i % 2 else f"burst {i}".encode() for i in range(100)]
        for payload in burst:
            await ws.send(payload)
        for i, payload in enumerate(burst):
            await expect_echo(ws, f"burst message {i}", payload, failures)

        # Ping with a payload; the pong must carry it back (websockets matches it by payload).
        try:
            pong = await ws.ping(b"duplex-ping")
            latency = await asyncio.wait_for(pong, 10)
        except asyncio.TimeoutError:
            failures.append("ping: no pong within 10 s")
            latency = None

        await ws.close(1000, "done")

    sent = ws.protocol.close_sent
    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        failures.append(f"close: the server sent no close frame (close_code {ws.close_code})")
    elif rcvd.code != 1000:
        failures.append(f"close: sent {sent}, server answered code {rcvd.code} reason {rcvd.reason!r}")

    if failures:
        print(f"FAIL echo_client.py against {url}: {len(failures)} problem(s)")
        for f in failures:
            print(f"  - {f}")
        return 1
    n = len(messages()) + 2 + len(burst)
    print(f"ok: {n} messages echoed, pong in {latency * 1000:.1f} ms, close {rcvd.code} {rcvd.reason!r}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("url")
    p.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    p.add_argument("--require-deflate", action="store_true",
                   help="fail unless permessage-deflate is negotiated")
    p.add_argument("--ca", help="PEM file of a CA to trust for wss://")
    p.add_argument("--timeout", type=float, default=60, help="give up after this many seconds")
    a = p.parse_args()
    try:
        code = asyncio.run(asyncio.wait_for(run(a.url, a.deflate, a.require_deflate, a.ca), a.timeout))
    except asyncio.TimeoutError:
        print(f"FAIL echo_client.py against {a.url}: not done within {a.timeout} s")
        code = 1
    except ConnectionClosed as e:
        print(f"FAIL echo_client.py against {a.url}: connection closed early: {e!r}")
        code = 1
    except Exception as e:  # handshake refused, connection reset, ...
        print(f"FAIL echo_client.py against {a.url}: {type(e).__name__}: {e}")
        code = 1
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
