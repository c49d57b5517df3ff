"""Hostile and broken HTTP clients against a real ``minigate serve`` (real sockets).

Short timeouts are configured so each case ends quickly; the assertions are about what the
server did (status, closed connection, memory, log lines), never about how fast.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.contract.server import Server, serve

MB = 1024 * 1024
#: Liveness bound for one socket read: far above every configured timeout.
LIVENESS = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("hostile"), MINIGATE_HTTP__HEADER_TIMEOUT="1",
               MINIGATE_HTTP__BODY_TIMEOUT="1", MINIGATE_HTTP__KEEP_ALIVE_TIMEOUT="1",
               MINIGATE_ACCESS_LOG="true") as srv:
        yield srv


def _connect(srv: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=LIVENESS)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return status, headers, body


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset) within LIVENESS."""
    sock.settimeout(LIVENESS)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def _warm(srv: Server) -> None:
    with httpx.Client(base_url=srv.base, timeout=10) as http:
        for _ in range(20):
            assert http.post("/v1/orders", json={}, headers=srv.auth).status_code == 400
            assert http.get("/v1/orders", headers=srv.auth).status_code == 200


def _error_code(body: bytes) -> str:
    error = json.loads(body)["error"]
    assert error["type"] and error["message"]
    return str(error["code"])


def test_a_declared_100_mb_body_is_refused_before_it_is_read(server: Server) -> None:
    _warm(server)
    before = server.rss()
    sock = _connect(server)
    sock.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % (100 * MB))
    status, headers, body = _read_response(sock)  # answered on the headers alone
    assert status == 413 and _error_code(body) == "body_too_large"
    assert headers.get("connection") == "close"
    sent = 0
    chunk = b"x" * MB
    try:
        for _ in range(100):
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert sent < 100 * MB  # the server hung up instead of reading 100 MB
    assert server.rss() - before < 5 * MB


def test_an_undeclared_100_mb_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    _warm(server)
    before = server.rss()
    sock = _connect(server)
    sock.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * (80 * 1024)  # past the 64 KiB limit: counted while it streams
    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    try:
        status, headers, body = _read_response(sock)
        assert status == 413 and _error_code(body) == "body_too_large"
        assert headers.get("connection") == "close"
    except ConnectionResetError:
        # The server stopped reading mid-chunk and closed: the kernel may answer our
        # unread bytes with a reset that discards the 413 before we read it.
        pass
    sent = len(piece)
    frame = b"%x\r\n%s\r\n" % (MB, b"x" * MB)
    try:
        for _ in range(100):  # the rest of 100 MB, if anybody still read it
            sock.sendall(frame)
            sent += MB
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert sent < 100 * MB
    assert server.rss() - before < 5 * MB


def test_the_limit_applies_before_authentication_on_every_route(server: Server) -> None:
    big = b"{" + b" " * (70 * 1024) + b"}"
    with httpx.Client(base_url=server.base, timeout=10) as http:
        for path in ("/v1/orders", "/v1/orders/ord_x/refunds", "/v1/client/orders/ord_x/pay",
                     "/v1/notify/latipay", "/sandbox/wallet/login"):
            r = http.post(path, content=big, headers={"Content-Type": "application/json"})
            assert r.status_code == 413, (path, r.text)
            assert r.json()["error"]["code"] == "body_too_large"


def _trickled_headers_are_cut_off(sock: socket.socket) -> bool:
    """Send the rest of a request's headers one byte every 0.1 s (10 s if never cut off):
    True if the server closed the connection well within LIVENESS."""
    started = time.monotonic()
    closed = False
    try:
        for _ in range(100):
            sock.sendall(b"X")
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        closed = _closed_by_server(sock)
    sock.close()
    return closed and time.monotonic() - started < LIVENESS


def test_slow_headers_are_cut_off(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert _trickled_headers_are_cut_off(sock)


def test_slow_headers_of_a_later_request_on_a_kept_alive_connection_are_cut_off(
        server: Server) -> None:
    # The deadline runs from each request's start, not the connection's: the first
    # request is answered, the second trickles its headers and is cut off.
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _read_response(sock)[0] == 200
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert _trickled_headers_are_cut_off(sock)


def test_a_busy_kept_alive_connection_outlives_the_header_timeout(server: Server) -> None:
    # Requests whose headers arrive whole are never cut off, however long the connection
    # has served: 2.4 s of requests on one connection, against a 1 s header timeout.
    sock = _connect(server)
    began = time.monotonic()
    answered = 0
    while time.monotonic() - began < 2.4:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock)[0] == 200
        answered += 1
        time.sleep(0.05)
    sock.close()
    assert answered >= 10


def test_a_slow_body_gets_408_and_the_connection_is_closed(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer nope\r\nContent-Length: 1000\r\n\r\n{")
    sock.settimeout(0.2)
    answer = b""
    for _ in range(100):  # one body byte every 0.2 s until the server answers
        try:
            sock.sendall(b" ")
            answer = sock.recv(65536)
            if answer:
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    assert answer.startswith(b"HTTP/1.1 408"), answer
    sock.settimeout(LIVENESS)
    try:
        while chunk := sock.recv(65536):  # the rest of the answer, then the server's close
            answer += chunk
    except ConnectionResetError:
        # A body byte of ours that crossed the answer was unread when the server closed:
        # the kernel resets instead of a plain FIN. Closed either way.
        pass
    sock.close()
    body = answer.partition(b"\r\n\r\n")[2]
    assert _error_code(body) == "request_timeout"


def test_an_idle_kept_alive_connection_is_closed(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, _ = _read_response(sock)
    assert status == 200
    assert _closed_by_server(sock)  # after the 1 s keep-alive timeout, not LIVENESS
    sock.close()


def test_the_concurrency_limit_answers_503(tmp_path: Path) -> None:
    # Its own server: idle connections must outlive the test's steps, whatever the load.
    with serve(tmp_path, MINIGATE_HTTP__MAX_CONCURRENCY="10",
               MINIGATE_HTTP__HEADER_TIMEOUT="60") as srv:
        idle = [_connect(srv) for _ in range(12)]
        try:
            with httpx.Client(base_url=srv.base, timeout=10) as http:
                busy = http.get("/healthz")
            assert busy.status_code == 503, busy.text
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + LIVENESS
        status = 0
        while status != 200 and time.monotonic() < deadline:  # the idle ones are gone
            time.sleep(0.1)
            status = httpx.get(srv.base + "/healthz", timeout=10).status_code
        assert status == 200


@pytest.mark.parametrize("path", ["/v1/orders", "/v1/notify/latipay"])
def test_a_client_that_leaves_mid_body_costs_one_line(server: Server, path: str) -> None:
    before = server.output()
    sock = _connect(server)
    sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"a\": ")
    time.sleep(0.2)
    sock.close()
    deadline = time.monotonic() + LIVENESS
    new = ""
    while time.monotonic() < deadline and "went away" not in new:
        time.sleep(0.1)
        new = server.output()[len(before):]
    lines = [line for line in new.splitlines() if line.strip()]
    assert sum("went away" in line for line in lines) == 1, new
    assert "Traceback" not in new and "ERROR" not in new, new


def test_the_access_log_redacts_query_values(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=10) as http:
        r = http.get("/v1/client/orders/ord_nope", params={"client_token": "ct_SECRET123"})
        assert r.status_code == 401
    deadline = time.monotonic() + LIVENESS
    while time.monotonic() < deadline and "ord_nope" not in server.output():
        time.sleep(0.1)
    out = server.output()
    line = next(line for line in out.splitlines() if "ord_nope" in line)
    assert "client_token=***" in line and '" 401' in line
    assert "ct_SECRET123" not in out
    assert "Traceback" not in out


def test_the_server_log_has_no_traceback_at_all(server: Server) -> None:
    assert "Traceback" not in server.output(), server.output()
