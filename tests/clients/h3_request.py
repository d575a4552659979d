#!/usr/bin/env python3
"""One HTTP/3 request with aioquic's HTTP/3 stack (a client nobody at Tally
wrote), verifying the server certificate. Prints the response as JSON:
{"status": 200, "headers": {...}, "body": "..."}.

  h3_request.py --cafile CERT --host 127.0.0.1 --port 4433 --server-name localhost \
      [--method POST] [--header "authorization: Bearer K"]... [--data TEXT] PATH
"""

import argparse
import asyncio
import json
import ssl

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.pending = {}

    def quic_event_received(self, event):
        for ev in self.h3.handle_event(event):
            if isinstance(ev, (HeadersReceived, DataReceived)) and ev.stream_id in self.pending:
                fut, resp = self.pending[ev.stream_id]
                if isinstance(ev, HeadersReceived):
                    resp["headers"].extend(ev.headers)
                else:
                    resp["body"] += ev.data
                if ev.stream_ended:
                    del self.pending[ev.stream_id]
                    fut.set_result(resp)

    async def request(self, method, authority, path, headers, body):
        sid = self._quic.get_next_available_stream_id()
        head = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()),
                (b":path", path.encode())] + [(k.encode(), v.encode()) for k, v in headers]
        self.h3.send_headers(sid, head, end_stream=not body)
        if body:
            self.h3.send_data(sid, body, end_stream=True)
        fut = asyncio.get_running_loop().create_future()
        self.pending[sid] = (fut, {"headers": [], "body": b""})
        self.transmit()
        return await asyncio.wait_for(fut, 20)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--server-name", default="localhost")
    ap.add_argument("--method", default="GET")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--data", default="")
    ap.add_argument("path")
    args = ap.parse_args()
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=args.server_name)
    config.verify_mode = ssl.CERT_REQUIRED
    config.load_verify_locations(args.cafile)
    headers = [tuple(x.strip() for x in h.split(":", 1)) for h in args.header]
    async with connect(args.host, args.port, configuration=config, create_protocol=Client) as client:
        resp = await client.request(args.method, "%s:%d" % (args.server_name, args.port), args.path, headers,
                                    args.data.encode())
    hdrs = {k.decode(): v.decode() for k, v in resp["headers"]}
    print(json.dumps({"status": int(hdrs.pop(":status")), "headers": hdrs, "body": resp["body"].decode()}))


if __name__ == "__main__":
    asyncio.run(main())
