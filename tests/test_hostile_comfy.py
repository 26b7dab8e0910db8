"""The ComfyUI client against hostile or broken servers: bounded memory and time, readable errors, no overwrites."""

import json
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from pistachio_nb.comfy import ComfyClient, ComfyError, ComfyTimeoutError, ImageRef, fill, load_workflow
from pistachio_nb.comfy.client import images_from_outputs
from pistachio_testkit.comfy_exec import Behaviour
from pistachio_testkit.comfy_server import ComfyTestServer

MiB = 1 << 20


class Hostile(BaseHTTPRequestHandler):
    """Answers each route as `server.answers[path](handler)` says; unknown routes 404."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self):
        route = urlsplit(self.path).path
        self.query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if self.headers.get("Content-Length"):
            self.rfile.read(int(self.headers["Content-Length"]))
        fn = self.server.answers.get(route)
        if fn is None:
            self.send(404, b"not found")
        else:
            try:
                fn(self)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up: what we want
                pass

    do_GET = do_POST = _answer

    def send(self, status, body, ctype="application/json", length=True):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def hostile():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    server.answers = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def endless(h, step=MiB, limit=64 * MiB, content_length=None, pause=0.0):
    """A body of zeros (bounded at `limit`), without Content-Length unless one is given."""
    h.send_response(200)
    h.send_header("Content-Type", "image/png")
    if content_length is not None:
        h.send_header("Content-Length", str(content_length))
    else:
        h.send_header("Connection", "close")
        h.close_connection = True
    h.end_headers()
    block, sent = b"\0" * step, 0
    while sent < limit:
        h.wfile.write(block)
        h.wfile.flush()
        sent += step
        time.sleep(pause)


REF = ImageRef("out.png")


# ---------------------------------------------------------------- 9: size caps and an overall deadline
def test_view_refuses_an_announced_body_over_its_cap_without_reading_it(hostile):
    hostile.answers["/view"] = lambda h: endless(h, limit=4 * MiB, content_length=2 << 30)  # claims 2 GiB
    with ComfyClient(hostile.url, timeout=(1, 2)) as c:
        start = time.monotonic()
        with pytest.raises(ComfyError, match=r"/view.*2147483648 bytes is over"):
            c.view(REF)  # the default cap (VIEW_MAX_BYTES) is far below 2 GiB
    assert time.monotonic() - start < 2


def test_view_and_download_stop_an_unannounced_body_at_the_cap(hostile, tmp_path):
    hostile.answers["/view"] = lambda h: endless(h)  # no Content-Length, 64 MiB
    with ComfyClient(hostile.url, timeout=(1, 2)) as c:
        with pytest.raises(ComfyError, match=rf"{hostile.url}/view.*over the {2 * MiB}-byte cap"):
            c.view(REF, max_bytes=2 * MiB)
        with pytest.raises(ComfyError, match="over the"):
            c.download_to(REF, tmp_path, max_bytes=2 * MiB)
    assert list(tmp_path.iterdir()) == []  # no partial file left, under any name


def test_a_trickling_body_hits_the_overall_deadline(hostile, tmp_path):
    hostile.answers["/view"] = lambda h: endless(h, step=1, limit=200, pause=0.05)  # 20 bytes/s, never a read timeout
    with ComfyClient(hostile.url, timeout=(1, 1)) as c:
        for call in (lambda: c.view(REF, deadline=1.0), lambda: c.download_to(REF, tmp_path, deadline=1.0)):
            start = time.monotonic()
            with pytest.raises(ComfyTimeoutError, match=f"{hostile.url}/view"):
                call()
            assert time.monotonic() - start < 2.5  # deadline + at most one read timeout
    with ComfyClient(hostile.url, timeout=(1, 1), deadline=1.0) as c:  # the client-wide deadline covers view() too
        with pytest.raises(ComfyTimeoutError):
            c.view(REF)
    assert list(tmp_path.iterdir()) == []


def test_download_to_streams_to_disk_in_bounded_memory(hostile, tmp_path):
    hostile.answers["/view"] = lambda h: endless(h, limit=48 * MiB, content_length=48 * MiB)
    with ComfyClient(hostile.url, timeout=(1, 5)) as c:
        tracemalloc.start()
        try:
            saved = c.download_to(REF, tmp_path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert saved == tmp_path / "out.png" and saved.stat().st_size == 48 * MiB
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB for a 48 MiB download"


# ---------------------------------------------------------------- 10: malformed answers are ComfyErrors
def answer(status, body):
    return lambda h: h.send(status, body if isinstance(body, bytes) else json.dumps(body).encode())


@pytest.mark.parametrize("route, status, body, call, words", [
    ("/prompt", 200, b"<html>hello</html>", lambda c: c.submit({}), "not JSON"),
    ("/prompt", 400, b"Bad Request (proxy)", lambda c: c.submit({}), "not JSON"),
    ("/prompt", 400, ["a", "list"], lambda c: c.submit({}), "HTTP 400"),
    ("/prompt", 200, {"number": 3}, lambda c: c.submit({}), "no prompt_id"),
    ("/prompt", 200, {"prompt_id": 7}, lambda c: c.submit({}), "no prompt_id"),
    ("/history/p1", 200, b"{truncated", lambda c: c.history("p1"), "not JSON"),
    ("/history/p1", 200, ["p1"], lambda c: c.history("p1"), "JSON object"),
    ("/history/p1", 200, {"p1": "done"}, lambda c: c.history("p1"), "not an object"),
    ("/queue", 200, {}, lambda c: c.load(), "queue_running"),
    ("/system_stats", 200, b"\xff\xfe", lambda c: c.system_stats(), "not JSON"),
    ("/upload/image", 200, {"ok": 1}, lambda c: c.upload_image(b"x", "a.png"), "no file name"),
])
def test_malformed_answers_are_comfy_errors_naming_server_and_route(hostile, route, status, body, call, words):
    hostile.answers[route] = answer(status, body)
    with ComfyClient(hostile.url, timeout=(1, 2), use_websocket=False) as c:
        with pytest.raises(ComfyError) as err:
            call(c)
    assert hostile.url in str(err.value) and route.split("?")[0].rsplit("/", 1)[0] in str(err.value)
    assert words in str(err.value)


def test_a_400_with_odd_error_shapes_is_still_a_readable_rejection(hostile):
    from pistachio_nb.comfy import PromptRejectedError

    hostile.answers["/prompt"] = answer(400, {"error": "no nodes", "node_errors": {"3": "bad", "4": {"errors": [1]}}})
    with ComfyClient(hostile.url, timeout=(1, 2), use_websocket=False) as c:
        with pytest.raises(PromptRejectedError, match="no nodes"):
            c.submit({})


def test_malformed_history_entries_are_read_as_far_as_they_go(hostile):
    entry = {"status": {"status_str": "success", "completed": True},
             "outputs": {"9": {"images": [{"subfolder": ""}, "x", {"filename": "a.png"}]}, "10": [1], "11": {"images": 5}}}
    hostile.answers["/history/p1"] = answer(200, {"p1": entry})
    with ComfyClient(hostile.url, timeout=(1, 2), use_websocket=False) as c:
        assert c.wait("p1", timeout=5).images == [ImageRef("a.png", "", "output", "9")]
    assert images_from_outputs(["not", "a", "dict"]) == []
    failed = {"status": {"status_str": "error", "messages": ["junk", ["execution_error"], 3]}, "outputs": {}}
    hostile.answers["/history/p2"] = answer(200, {"p2": failed})
    with ComfyClient(hostile.url, timeout=(1, 2), use_websocket=False) as c:
        with pytest.raises(ComfyError, match="p2 error"):
            c.wait("p2", timeout=5)


def graph(seed):
    base = dict(checkpoint="tiny-sdxl.safetensors", lora="character.safetensors", width=32, height=32, steps=2)
    return fill(load_workflow("txt2img_lora"), seed=seed, **base)


def test_bad_websocket_messages_are_skipped_and_the_reader_survives():
    with ComfyTestServer(behaviour=Behaviour(delay=0.02)) as server, ComfyClient(server.url, timeout=(2, 5)) as c:
        real_send = server.engine.send

        def send(kind, data, sid):  # before each real message, a few broken ones (on the server's loop thread)
            pid = data.get("prompt_id", "")
            for text in ("[1, 2]", '{"type": "executing", "data": [1]}', '"just a string"', "{not json",
                         json.dumps({"type": "executed", "data": {"prompt_id": pid, "node": "9",
                                                                  "output": {"images": [{"subfolder": ""}]}}}),
                         json.dumps({"type": "executing", "data": {"prompt_id": 5, "node": None}}),
                         json.dumps({"type": "executed", "data": {"prompt_id": pid, "output": [1]}})):
                for ws in list(server.sockets.values()):
                    ws.write_message(text)
            real_send(kind, data, sid)

        server.engine.send = send
        result = c.run(graph(1), timeout=5)
        assert [i.node for i in result.images] == ["8"] and result.images[0].filename
        assert c._ws is not None  # the reader is still routing messages
        assert c.run(graph(2), timeout=5).images


def test_when_the_reader_dies_waits_fall_back_to_polling():
    with ComfyTestServer(behaviour=Behaviour(delay=0.3)) as server, ComfyClient(server.url, timeout=(2, 5)) as c:
        c._ensure_ws()
        ws = c._ws
        real_recv = ws.recv

        def recv():  # the first message arrives, then the reader meets something nobody foresaw
            real_recv()
            raise RuntimeError("unforeseen")

        ws.recv = recv
        start = time.monotonic()
        prompt_id = c.submit(graph(3))
        result = c.wait(prompt_id, timeout=5)
        assert result.images and time.monotonic() - start < 4
        assert c._ws is not ws


# ---------------------------------------------------------------- 12: sanitised names never overwrite
def by_name(h):
    h.send(200, ("body of " + h.query.get("filename", "")).encode(), "image/png")


def test_names_that_sanitise_alike_get_suffixes_not_overwrites(hostile, tmp_path):
    hostile.answers["/view"] = by_name
    (tmp_path / "image").write_bytes(b"the user's own file")
    with ComfyClient(hostile.url, timeout=(1, 2)) as c:
        saved = [c.download_to(ImageRef(name), tmp_path) for name in ("..", "....", "", "../a.png", "a.png")]
    assert [p.name for p in saved] == ["image (1)", "image (2)", "image (3)", "a.png", "a (1).png"]
    assert [p.read_bytes() for p in saved] == [b"body of ..", b"body of ....", b"body of ", b"body of ../a.png",
                                               b"body of a.png"]
    assert (tmp_path / "image").read_bytes() == b"the user's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["image"] + [p.name for p in saved])


def test_concurrent_downloads_of_one_name_all_survive(hostile, tmp_path):
    hostile.answers["/view"] = by_name
    saved = []
    with ComfyClient(hostile.url, timeout=(2, 5)) as c:
        threads = [threading.Thread(target=lambda: saved.append(c.download_to(ImageRef("x.png"), tmp_path)))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(saved) == 8 and len(set(saved)) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in saved)
