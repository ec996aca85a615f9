#!/usr/bin/env python3
"""Interop peer: a python-websockets echo server, to test duplex's client.

    python3 echo_server.py PORT [--deflate] [--cert PEM --key PEM]

Listens on 127.0.0.1:PORT and sends every text or binary message back unchanged. Prints `ready`
on stdout once listening; logs each connection's open and close on stderr. Runs until killed
(SIGTERM/SIGINT stop it cleanly). Compression is not negotiated unless --deflate is given.
With --cert and --key it serves wss:// (TLS) with that certificate chain and key.
"""
import argparse
import asyncio
import signal
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MiB = 1 << 20


async def echo(ws):
    peer = ws.remote_address
    print(f"echo_server.py: opened {peer} path {ws.request.path}", file=sys.stderr, flush=True)
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass
    rcvd = ws.protocol.close_rcvd
    code, reason = (rcvd.code, rcvd.reason) if rcvd else (ws.close_code, "")
    print(f"echo_server.py: closed {peer} {code} {reason!r}", file=sys.stderr, flush=True)


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("port", type=int)
    p.add_argument("--deflate", action="store_true", help="accept permessage-deflate")
    p.add_argument("--cert", help="serve TLS with this certificate chain (PEM); needs --key")
    p.add_argument("--key", help="the private key of --cert (PEM)")
    a = p.parse_args()
    if bool(a.cert) != bool(a.key):
        p.error("--cert and --key go together")
    tls = {}
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        tls = {"ssl": ctx}
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(echo, "127.0.0.1", a.port, compression="deflate" if a.deflate else None,
                     max_size=64 * MiB, ping_interval=None, **tls):
        print("ready", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
