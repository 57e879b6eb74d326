"""The peer of the shed latency in ``bench/serve_load.py``: the least a Python server on this machine
does to turn a request away. uvloop and httptools (the loop and parser the service's uvicorn uses),
one process, no framework: a prepared 503 with ``Retry-After`` written as soon as a request's
headers are parsed, keep-alive kept; ``GET /livez`` answers 200 for the driver's readiness check.

    python bench/_bare_shed.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop

BODY = b'{"detail":"over capacity (the bare peer of bench/serve_load.py)"}'
SHED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY))
LIVE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class Bare(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.transport, self.url = transport, b""
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_headers_complete(self) -> None:
        self.transport.write(LIVE if self.url == b"/livez" else SHED)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Bare, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
