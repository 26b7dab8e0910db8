"""The test file server answers hostile requests like a CDN (400 / 416 / 404) instead of dropping the connection."""

from __future__ import annotations

import http.client
import socket

import pytest

from pistachio_testkit.fileserver import serve_folder

DATA = b"0123456789" * 100


@pytest.fixture
def server(tmp_path):
    (tmp_path / "model.bin").write_bytes(DATA)
    with serve_folder(tmp_path) as srv:
        yield srv


def get(server, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.headers), resp.read()
    finally:
        conn.close()


def raw(server, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("path", ["/model.bin%00.txt", "/%00", "/a/%00/../model.bin"])
def test_a_nul_byte_in_the_path_is_a_400(server, path):
    status, _, _ = get(server, path)
    assert status == 400


def test_a_raw_nul_byte_in_the_request_line_is_a_400(server):
    answer = raw(server, b"GET /model\x00.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize("value", ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=" + "1" * 19 + "-"])
def test_an_over_long_range_number_is_a_416(server, value):
    status, headers, body = get(server, "/model.bin", {"Range": value})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(DATA)}" and body == b""


def test_a_name_too_long_for_the_file_system_is_a_404(server):
    status, _, _ = get(server, "/" + "a" * 5000)
    assert status == 404


def test_ordinary_ranges_still_work(server):
    assert get(server, "/model.bin", {"Range": "bytes=10-19"})[::2] == (206, DATA[10:20])
    assert get(server, "/model.bin", {"Range": "bytes=990-"})[::2] == (206, DATA[990:])
    assert get(server, "/model.bin")[::2] == (200, DATA)
    assert get(server, "/model.bin", {"Range": "bytes=" + "0" * 30 + "5-"})[::2] == (206, DATA[5:])  # a number, not digits
    assert get(server, "/model.bin", {"Range": "bytes=1000-"})[0] == 416
