"""A Kubernetes API stand-in on a real socket that misbehaves on purpose.

Each request takes the next action of ``script`` (then ``default``):

- ``("ok",)``                      200 with the collection stored for the path (empty lists otherwise)
- ``("status", code, retry_after)`` a Status answer; ``retry_after`` None for no Retry-After header
- ``("hang",)``                    accept, read the request, never answer (until the stub stops)
- ``("reset",)``                   read the request, then reset the connection (RST, no answer)
- ``("partial",)``                 send the headers and a part of the body, then reset

The real kubernetes Python client talks to it through ``_k8s`` (plain HTTP).  ``requests``
records (method, path) of every request.  Used by the _k8s retry tests and the
injection_check bad-input tests.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from urllib.parse import urlparse


class ScriptedAPI:
    def __init__(self):
        self.script: list[tuple] = []
        self.default: tuple = ("ok",)
        self.collections: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    # ---- control -------------------------------------------------------------------
    def close(self):
        self.stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress: the port stops listening now
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(timeout=2)
        with self.lock:
            conns = list(self.conns)
        for conn in conns:
            try:
                conn.close()
            except OSError:
                pass

    def count(self, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, _p in self.requests if method is None or m == method)

    # ---- serving -------------------------------------------------------------------
    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_request(self, conn, buf: bytes):
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return None, b""
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _sep, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        return (method, target), rest[length:]

    def _serve(self, conn):
        buf = b""
        try:
            while not self.stop.is_set():
                request, buf = self._read_request(conn, buf)
                if request is None:
                    return
                method, target = request
                with self.lock:
                    self.requests.append((method, urlparse(target).path))
                    action = self.script.pop(0) if self.script else self.default
                kind = action[0]
                if kind == "hang":
                    self.stop.wait()
                    return
                if kind == "reset":
                    self._reset(conn)
                    return
                if kind == "partial":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"kind\": ")
                    self._reset(conn)
                    return
                if kind == "status":
                    code, retry_after = action[1], action[2]
                    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                            "reason": "TooManyRequests" if code == 429 else "InternalError",
                            "message": "the stub answers %d" % code}
                    extra = {} if retry_after is None else {"Retry-After": str(retry_after)}
                    self._send(conn, code, body, extra)
                    continue
                path = urlparse(target).path
                self._send(conn, 200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                       "items": self.collections.get(path, [])})
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _send(conn, code: int, body: dict, headers: dict | None = None):
        data = json.dumps(body).encode()
        head = "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (code, len(data))
        for name, value in (headers or {}).items():
            head += "%s: %s\r\n" % (name, value)
        conn.sendall(head.encode() + b"\r\n" + data)

    @staticmethod
    def _reset(conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
