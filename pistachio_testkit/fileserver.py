"""A small static file server on 127.0.0.1 with HTTP Range support (Python's http.server has none).

Used by the tests and the demo profile to serve model files the same way a CDN does, so the
downloader's resume path runs against real HTTP.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
MAX_DIGITS = 18  # a byte position beyond int64 cannot be satisfied: nginx answers 416 to such a Range


class RangeFileHandler(BaseHTTPRequestHandler):
    """GET/HEAD of files below `server.root`; honours `Range: bytes=a-` and `bytes=a-b` (206 / 416)."""

    server: FileServer
    chunk = 1 << 20

    def log_message(self, format: str, *args) -> None:  # keep test and notebook output quiet
        pass

    def _target(self) -> Path | None:
        """The file a request path names, or None; ValueError for a path no file can have (a NUL byte)."""
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        if "\x00" in rel:
            raise ValueError("NUL byte in the path")
        try:
            path = (self.server.root / rel).resolve()
            return path if path.is_file() and self.server.root in path.parents else None
        except OSError:  # e.g. a name too long for the file system: no such file
            return None

    def do_HEAD(self) -> None:
        self.do_GET(body=False)

    def do_GET(self, body: bool = True) -> None:
        try:
            path = self._target()
        except ValueError:
            self.send_error(400, "bad request path")
            return
        if path is None:
            self.send_error(404, "not found")
            return
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            if max(len(match.group(1).lstrip("0")), len(match.group(2).lstrip("0"))) > MAX_DIGITS:
                start, end = size, size - 1  # unsatisfiable, like nginx (int() would refuse over 4300 digits anyway)
            else:
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            self.send_body(path, start, end)

    def send_body(self, path: Path, start: int, end: int) -> None:
        """Write bytes start..end (inclusive) of the file; subclasses may misbehave here on purpose."""
        with path.open("rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                data = fh.read(min(self.chunk, left))
                if not data:
                    break
                self.wfile.write(data)
                left -= len(data)


class FileServer(ThreadingHTTPServer):
    """The server object: `.url` to fetch from, `.close()` (or `with`) to stop."""

    daemon_threads = True

    def __init__(self, root: Path, port: int, handler: type[RangeFileHandler]) -> None:
        self.root = Path(root).resolve()
        super().__init__(("127.0.0.1", port), handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve_folder(root: str | Path, port: int = 0, handler: type[RangeFileHandler] = RangeFileHandler) -> FileServer:
    """Serve `root` on 127.0.0.1 (port 0 = any free port) from a background thread."""
    server = FileServer(Path(root), port, handler)
    threading.Thread(target=server.serve_forever, name=f"fileserver:{server.url}", daemon=True).start()
    return server
