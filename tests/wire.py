"""A raw HTTP/1.1 client socket: what odd or hostile clients put on the wire, byte for byte."""

import socket
import time


class Wire:
    """A raw client connection that reads HTTP/1.1 answers one at a time."""

    def __init__(self, url, timeout=10, receive_buffer=None):
        host, port = url.replace("http://", "").split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:  # before connecting: the window the client offers
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect((host, int(port)))
        self.buffer = bytearray()

    def send(self, data):
        self.sock.sendall(data)
        return self

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buffer += chunk

    def _line(self):
        while b"\r\n" not in self.buffer:
            self._fill()
        end = self.buffer.index(b"\r\n")
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    def _take(self, size):
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def answer(self, head_only=False):
        """(status, headers with lower-case names, body) of the next answer."""
        status = int(self._line().split()[1])
        headers = {}
        while line := self._line():
            name, value = line.decode("latin1").split(":", 1)
            headers[name.strip().lower()] = value.strip()
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line(), 16):
                body += self._take(size)
                self._take(2)
            self._take(2)
            return status, headers, body
        return status, headers, self._take(int(headers.get("content-length", 0)))

    def closed(self, wait=5):
        """True once the server closed the connection (nothing more to read)."""
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def get(path, *headers, version="HTTP/1.1", method="GET"):
    lines = [f"{method} {path} {version}", "Host: localhost", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path, body, *headers):
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", "Content-Type: application/x-www-form-urlencoded",
             f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def access_line(caplog, path, timeout=5):
    """The access log line of ``path`` (written just after the answer: it may come a moment later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            if record.name == "biothings.access" and path in record.getMessage():
                return record.getMessage()
        time.sleep(0.02)
    raise AssertionError(f"no access log line for {path}")
