#!/usr/bin/env python3
"""Writes the hand-made seed inputs of each fuzz target into fuzz/corpus/<target>/seed-<name>.

Run from anywhere: `python3 fuzz/make_seeds.py`. The layouts of the inputs are described at the
top of each target (fuzz/fuzz_targets/*.rs) and in fuzz/src/lib.rs (Setup::from_bytes).
Compressed payloads are made with zlib's raw deflate and a sync flush, minus the 00 00 ff ff
trailer, as RFC 7692 says a sender does.
"""
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 §5.7's example key


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def frame(opcode, payload=b"", fin=True, rsv1=False, key=None):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if key else 0
    if n < 126:
        head = bytes([b0, mask_bit | n])
    elif n <= 0xFFFF:
        head = bytes([b0, mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mask_bit | 127]) + struct.pack(">Q", n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def deflate(messages, wbits=15, final=False):
    """Compresses each message with one shared context; returns the payloads."""
    c = zlib.compressobj(1, zlib.DEFLATED, -wbits)
    out = []
    for m in messages:
        data = c.compress(m) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
        if data.endswith(b"\x00\x00\xff\xff"):
            data = data[:-4]
        out.append(data)
    return out


def wire_seeds(key):
    """Frame sequences for the connection targets: masked with `key` for a server, else not."""
    f = lambda *a, **k: frame(*a, key=key, **k)  # noqa: E731
    hello, again = deflate([b"Hello, Hello, Hello!", b"Hello, Hello, Hello, again"])
    return {
        "text": f(1, b"Hello"),
        "binary-256": f(2, bytes(range(256))),
        "fragmented-text": f(1, "héllo ".encode()[:2], fin=False) + f(0, "héllo ".encode()[2:], fin=False)
        + f(9, b"ping in between") + f(0, "wörld".encode()),
        "ping-pong": f(9, b"are you there") + f(10, b"unsolicited"),
        "close-1000": f(1, b"bye") + f(8, struct.pack(">H", 1000) + b"normal"),
        "close-empty": f(8),
        "compressed": f(1, hello, rsv1=True) + f(2, again, rsv1=True),
        "compressed-fragmented": f(1, hello[:3], rsv1=True, fin=False) + f(0, hello[3:]),
        "bad-utf8": f(1, b"ok \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
        "continuation-without-start": f(0, b"x"),
        "big-header-16": f(2, bytes(300)),
    }


def main():
    # frame_header: header bytes (with a payload where it fits).
    for name, data in {
        "text-hello": frame(1, b"Hello"),
        "masked-hello": frame(1, b"Hello", key=KEY),
        "binary-256": frame(2, bytes(256))[:4],
        "binary-64k": frame(2, bytes(65536))[:10],
        "masked-64k": frame(2, bytes(65536), key=KEY)[:14],
        "ping": frame(9),
        "close-1000": frame(8, struct.pack(">H", 1000)),
        "fragment-rsv1": frame(1, b"abc", fin=False, rsv1=True),
        "non-minimal": bytes([0x82, 0x7E, 0x00, 0x05]),
    }.items():
        write("frame_header", name, data)

    # handshake_request: request heads.
    rfc = (b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n"
           b"Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n")
    write("handshake_request", "rfc", rfc)
    write("handshake_request", "deflate-offers", rfc.replace(
        b"\r\n\r\n",
        b"\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
        b"permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        b"Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; x=\"quoted\"\r\n\r\n"))
    write("handshake_request", "query-keepalive", rfc.replace(b"/chat", b"/chat?room=1&x=%20")
          .replace(b"Connection: Upgrade", b"Connection: keep-alive, Upgrade"))
    write("handshake_request", "plain-get", b"GET /index.html HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n")
    write("handshake_request", "http10-post", rfc.replace(b"GET", b"POST").replace(b"HTTP/1.1", b"HTTP/1.0"))

    # handshake_response: [client deflate byte, server deflate byte] + answer with @@ for the key.
    ok = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: @@\r\n")
    write("handshake_response", "plain", b"\xe0\xfc" + ok + b"\r\n")
    write("handshake_response", "protocol-and-frame", b"\xe0\xfc" + ok
          + b"Sec-WebSocket-Protocol: chat\r\n\r\n" + frame(1, b"hi") + frame(9, b"p"))
    hello, = deflate([b"Hello, Hello, Hello!"], wbits=10)
    write("handshake_response", "deflate", b"\x03\x0b" + ok
          + b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
            b"client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10\r\n\r\n"
          + frame(1, hello, rsv1=True))
    write("handshake_response", "not-found", b"\x00\x00HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    # extended_connect: [client deflate byte, server deflate byte, flags] + request lines, "==",
    # status and answer lines (RFC 8441 §5.1's example, and its variations).
    rfc8441 = (b"CONNECT\nwebsocket\nhttps\nserver.example.com\n/chat\n"
               b"sec-websocket-protocol: chat, superchat\nsec-websocket-version: 13\n"
               b"origin: http://www.example.com\n")
    write("extended_connect", "rfc", b"\xe0\xfc\x05" + rfc8441 + b"==\n200\nsec-websocket-protocol: chat\n")
    write("extended_connect", "deflate", b"\x03\x0b\x04" + rfc8441
          + b"sec-websocket-extensions: permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
            b"permessage-deflate\n==\n200\nsec-websocket-extensions: permessage-deflate; "
            b"server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; "
            b"client_max_window_bits=10\n")
    write("extended_connect", "plain-connect", b"\x00\x00\x00CONNECT\n-\n-\nproxy.example:443\n-\n==\n"
          b"426\nsec-websocket-version: 13\n")
    write("extended_connect", "version-8", b"\x00\x00\x02" + rfc8441.replace(b"13", b"8") + b"==\n503\nretry-after: 2\n")
    write("extended_connect", "get-h2", b"\x00\x00\x02GET\n-\nhttp\nh\n/\naccept: */*\n==\n204\n")

    # connection_server / connection_client: [flags, limit, read size] + frames.
    setups = {
        "": bytes([0x00, 0, 0]),
        "-streaming-reads7": bytes([0x01, 0, 7]),
        "-small-limit": bytes([0x12, 16, 3]),  # max message and frame size 129
        "-deflate-echo": bytes([0x28, 0, 0]),
        "-deflate-streaming-close": bytes([0x49, 0, 5]),
    }
    for target, key in (("connection_server", KEY), ("connection_client", None)):
        seeds = wire_seeds(key)
        for name, wire in seeds.items():
            write(target, name, setups[""] + wire)
        for suffix, setup in list(setups.items())[1:]:
            for name in ("fragmented-text", "compressed", "big-header-16", "close-1000"):
                write(target, name + suffix, setup + seeds[name])

    # inflate: [flags, window bits, read size, limit] + records [ctl, len, bytes].
    rec = lambda ctl, data: bytes([ctl, len(data)]) + data  # noqa: E731
    a, b = deflate([b"Hello, Hello, Hello!", b"Hello, Hello, Hello, again"])
    write("inflate", "two-messages", bytes([0x00, 0x3F, 0, 0]) + rec(0x13, a) + rec(0x21, b))
    write("inflate", "fragmented-client", bytes([0x01, 0x3F, 3, 0]) + rec(0x02, a[:4]) + rec(0x08, a[4:5])
          + rec(0x01, a[5:]))
    one, = deflate([b"x" * 200], wbits=9)
    write("inflate", "window9-streaming", bytes([0x02, 0x09, 0, 0]) + rec(0x01, one))
    fin, = deflate([b"final block, BFINAL set"], final=True)
    write("inflate", "bfinal", bytes([0x00, 0x3F, 0, 0]) + rec(0x03, fin) + rec(0x03, a))
    bomb, = deflate([bytes(200_000)])
    write("inflate", "bomb-small-limit", bytes([0x10, 0x3F, 0, 4]) + rec(0x01, bomb[:255]))
    write("inflate", "no-context-takeover", bytes([0x0C, 0x3F, 0, 0]) + rec(0x03, a) + rec(0x05, b"plain"))
    write("inflate", "round-trip", bytes([0x20, 0x3F, 0, 0]) + rec(0x02, "héllo ".encode() * 5)
          + rec(0x0B, b" world" * 10) + rec(0x01, bytes(range(100))))
    write("inflate", "round-trip-streaming-small", bytes([0x36, 0x12, 9, 1]) + rec(0x01, b"abc" * 30)
          + rec(0x03, b"z" * 200))


if __name__ == "__main__":
    main()
