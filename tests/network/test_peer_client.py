"""PeerClient's transport against a real HTTP/1.1 server on loopback: one kept-alive connection per thread, a
connection the server closed while idle replaced without losing the request, errors carrying the status and the
peer's JSON, and a forked child never writing on its parent's socket."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from network.peer.client import PeerClient, PeerRequestError


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[str] = []
        self.close_after_answer = False  # close the connection after answering, without saying so


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()
        if self.server.close_after_answer:
            self.close_connection = True

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path.startswith("/v1/missing"):
            self._answer(404, {"reason": "NOT_FOUND", "detail": "no such thing"})
        else:
            self._answer(200, {"path": self.path, "pid": os.getpid()})

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.server.requests.append(self.path)
        self._answer(200, {"txs": [{"echo": len(body["envelopes"])}]})


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    thread = threading.Thread(target=s.serve_forever, daemon=True)
    thread.start()
    yield s
    s.shutdown()
    s.server_close()


def _client(server: _Server) -> PeerClient:
    host, port = server.server_address[:2]
    return PeerClient(f"http://{host!s}:{port}", timeout=5)


def test_requests_of_one_thread_share_one_connection(server: _Server) -> None:
    client = _client(server)
    for i in range(5):
        assert client.get_json("/v1/status", [("n", str(i))])["path"] == f"/v1/status?n={i}"
    assert client.submit([b"a", b"b"], wait=True)["txs"] == [{"echo": 2}]
    assert server.connections == 1
    client.close()
    client.get_json("/v1/status")
    assert server.connections == 2


def test_threads_do_not_share_a_connection(server: _Server) -> None:
    client = _client(server)
    answers: list[object] = []
    threads = [threading.Thread(target=lambda: answers.append(client.get_json("/v1/status"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 4 and server.connections == 4


def test_connection_closed_by_the_peer_while_idle_is_replaced(server: _Server) -> None:
    client = _client(server)
    server.close_after_answer = True
    for i in range(3):  # each request finds the previous connection closed and goes out again on a new one
        assert client.get_json(f"/v1/status/{i}")["path"] == f"/v1/status/{i}"
    assert server.requests == ["/v1/status/0", "/v1/status/1", "/v1/status/2"]  # each answered exactly once
    assert server.connections == 3


def test_http_error_carries_status_and_the_peers_json(server: _Server) -> None:
    client = _client(server)
    with pytest.raises(PeerRequestError) as caught:
        client.get_json("/v1/missing/x")
    assert caught.value.status == 404
    assert caught.value.body == {"reason": "NOT_FOUND", "detail": "no such thing"}
    assert client.get_json("/v1/status")["path"] == "/v1/status"  # the connection is still usable
    assert server.connections == 1


def test_no_peer_listening_is_an_error_without_status(server: _Server) -> None:
    host, port = server.server_address[:2]
    server.shutdown()
    server.server_close()
    client = PeerClient(f"http://{host!s}:{port}", timeout=2)
    with pytest.raises(PeerRequestError) as caught:
        client.get_json("/v1/status")
    assert caught.value.status is None


def test_forked_child_opens_its_own_connection(server: _Server) -> None:
    client = _client(server)
    client.get_json("/v1/status")
    pid = os.fork()
    if pid == 0:  # the child: it must not write on the parent's socket
        code = 1
        try:
            code = 0 if client.get_json("/v1/child")["path"] == "/v1/child" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.get_json("/v1/parent")["path"] == "/v1/parent"
    assert server.requests == ["/v1/status", "/v1/child", "/v1/parent"]
    assert server.connections == 2  # the parent's, kept, and the child's own
