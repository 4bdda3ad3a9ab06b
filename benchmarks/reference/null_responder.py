"""The floor of the HTTP benchmark: a do-nothing HTTP/1.1 server on uvloop and httptools.

    python null_responder.py --port 8000 --answers answers.json

It parses each request with httptools (the parser of uvicorn and of this framework's
server) and writes a canned answer: ``answers.json`` maps ``"METHOD /path?query"`` to
the file whose bytes to answer (the benchmark captures them from the real servers, so
each case's answer has its real size). No routing, no JSON, no engine call: what is
left is the cost of Python serving HTTP over asyncio, the least any Python server on
this stack can spend per request. Keep-alive and pipelined requests are answered in order.
"""

import argparse
import asyncio
import json

import httptools
import uvloop

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def load_answers(path):
    with open(path) as handle:
        table = json.load(handle)
    answers = {}
    for request, body_path in table.items():
        with open(body_path, "rb") as handle:
            body = handle.read()
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        answers[request.encode()] = head + body
    return answers


class Responder(asyncio.Protocol):
    def __init__(self, answers):
        self.answers = answers
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url):
        self.url += url

    def on_message_complete(self):
        key = self.parser.get_method() + b" " + self.url
        self.url = b""
        self.transport.write(self.answers.get(key, NOT_FOUND))
        if not self.parser.should_keep_alive():
            self.transport.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--answers", required=True, help="JSON: {\"METHOD /path?query\": answer file}")
    args = parser.parse_args()
    answers = load_answers(args.answers)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Responder(answers), args.address, args.port, backlog=1024)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
