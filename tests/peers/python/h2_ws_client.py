#!/usr/bin/env python3
"""Interop peer: a WebSocket client over HTTP/2 (RFC 8441 extended CONNECT) made of Python's
`h2` (the HTTP/2 state machine) and `wsproto` (the WebSocket framing, with permessage-deflate).

    python3 h2_ws_client.py HOST:PORT [--path /echo] [--protocol chat] [--cafile CA.pem | --insecure]

Without --cafile or --insecure: h2c with prior knowledge. With --cafile: TLS offering only ALPN h2,
trusting CA.pem; with --insecure: the same without checking the certificate (a server that made
its own self-signed one, like `axum_chat --tls`).
Waits for the server's SETTINGS_ENABLE_CONNECT_PROTOCOL, sends CONNECT with :protocol websocket,
sends a text message and a 64 KiB binary one (past HTTP/2's initial 65,535-byte window, so flow
control is exercised), checks both echoes, closes with 1000, waits for the server's close and the
end of its stream. Prints one JSON object on stdout; exit status 0 when every step passed.
"""
import argparse
import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate

TEXT = "hello from python h2"
BINARY = bytes(i % 251 for i in range(65536))


class Peer:
    def __init__(self, sock):
        self.sock = sock
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.flush()
        self.connect_enabled = False
        self.stream_id = None
        self.response = None
        self.stream_ended = False
        self.pending = []  # WebSocket bytes received on our stream
        self.window_open = True

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def read(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the TCP connection")
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                setting = event.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                if setting is not None:
                    self.connect_enabled = setting.new_value == 1
            elif isinstance(event, h2.events.ResponseReceived) and event.stream_id == self.stream_id:
                self.response = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == self.stream_id:
                self.pending.append(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == self.stream_id:
                self.stream_ended = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == self.stream_id:
                raise ConnectionError(f"the server reset the stream ({event.error_code!r})")
        self.flush()

    def send_data(self, data, end_stream=False):
        """Sends DATA as the flow-control windows allow, reading (WINDOW_UPDATEs) while they are shut."""
        while data:
            window = min(self.h2.local_flow_control_window(self.stream_id), self.h2.max_outbound_frame_size)
            if window <= 0:
                self.read()
                continue
            chunk, data = data[:window], data[window:]
            self.h2.send_data(self.stream_id, chunk)
            self.flush()
        if end_stream:
            self.h2.end_stream(self.stream_id)
            self.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("authority")
    ap.add_argument("--path", default="/")
    ap.add_argument("--protocol", action="append", default=[])
    ap.add_argument("--cafile")
    ap.add_argument("--insecure", action="store_true")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()

    tls = bool(args.cafile or args.insecure)
    report = {"ok": False, "step": "connect", "tls": tls, "alpn": None, "status": None,
              "protocol": None, "extensions": None, "echoed": [], "close_code": None, "stream_ended": False}
    try:
        host, port = args.authority.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=args.timeout)
        if tls:
            report["step"] = "TLS handshake"
            ctx = ssl.create_default_context(cafile=args.cafile)
            if args.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname=host)
            report["alpn"] = sock.selected_alpn_protocol()
            if report["alpn"] != "h2":
                raise RuntimeError(f"ALPN chose {report['alpn']!r}, not h2")
        peer = Peer(sock)

        report["step"] = "wait for SETTINGS_ENABLE_CONNECT_PROTOCOL"
        while not peer.connect_enabled:
            peer.read()

        report["step"] = "extended CONNECT"
        deflate = PerMessageDeflate()
        headers = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https" if tls else "http"),
                   (":path", args.path), (":authority", args.authority), ("sec-websocket-version", "13"),
                   ("sec-websocket-extensions", f"{deflate.name}; {deflate.offer()}")]
        if args.protocol:
            headers.append(("sec-websocket-protocol", ", ".join(args.protocol)))
        peer.stream_id = peer.h2.get_next_available_stream_id()
        peer.h2.send_headers(peer.stream_id, headers)
        peer.flush()
        while peer.response is None:
            peer.read()
        report["status"] = int(peer.response[":status"])
        report["protocol"] = peer.response.get("sec-websocket-protocol")
        report["extensions"] = peer.response.get("sec-websocket-extensions")
        if report["status"] != 200:
            raise RuntimeError(f"the server answered {report['status']}")
        extensions = []
        if report["extensions"]:
            if not report["extensions"].startswith(deflate.name):
                raise RuntimeError(f"unoffered extension {report['extensions']!r}")
            deflate.finalize(report["extensions"])
            extensions.append(deflate)
        ws = Connection(ConnectionType.CLIENT, extensions=extensions)

        def next_event():
            while True:
                for event in ws.events():
                    if isinstance(event, Ping):
                        peer.send_data(ws.send(event.response()))
                        continue
                    return event
                if not peer.pending:
                    if peer.stream_ended:
                        return None
                    peer.read()
                    continue
                ws.receive_data(b"".join(peer.pending))
                peer.pending.clear()

        def whole_message():
            parts = []
            while True:
                event = next_event()
                if not isinstance(event, Message):
                    raise RuntimeError(f"expected a message, got {event!r}")
                parts.append(event.data)
                if event.message_finished:
                    return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

        report["step"] = "text echo"
        peer.send_data(ws.send(TextMessage(data=TEXT)))
        echoed = whole_message()
        if echoed != TEXT:
            raise RuntimeError(f"text echo differs: {echoed!r}")
        report["echoed"].append(echoed)

        report["step"] = "binary echo"
        peer.send_data(ws.send(BytesMessage(data=BINARY)))
        echoed = whole_message()
        if echoed != BINARY:
            raise RuntimeError(f"binary echo differs ({len(echoed)} bytes)")
        report["echoed"].append(f"binary:{len(echoed)}")

        report["step"] = "close handshake"
        peer.send_data(ws.send(CloseConnection(code=1000, reason="done")))
        event = next_event()
        if not isinstance(event, CloseConnection):
            raise RuntimeError(f"expected the server's close, got {event!r}")
        report["close_code"] = event.code
        report["step"] = "end of the server's stream"
        while not peer.stream_ended:
            peer.read()
        report["stream_ended"] = True
        peer.send_data(b"", end_stream=True)
        report["step"] = "done"
        report["ok"] = True
    except Exception as e:  # the report says which step failed
        report["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
