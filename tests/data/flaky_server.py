"""A tiny real HTTP server standing in for ComfyUI in the watchdog tests; it misbehaves on purpose.

usage: flaky_server.py PORT STATE_FILE MODE   (MODE: crash | hang | healthy)
Every start increments the counter in STATE_FILE. On the first start it answers three
`/system_stats` polls, then either exits with code 3 after printing a traceback-like line to
stderr (crash), or stops answering while staying alive (hang). Later starts stay healthy.
"""

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

port, state, mode = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
start_no = int(state.read_text() or 0) + 1 if state.exists() else 1
state.write_text(str(start_no))
misbehave = start_no == 1 and mode != "healthy"
served = 0


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        global served
        served += 1
        if misbehave and served > 3:
            if mode == "crash":
                print("RuntimeError: CUDA out of memory (simulated crash)", file=sys.stderr, flush=True)
                threading.Thread(target=lambda: (time.sleep(0.05), __import__("os")._exit(3))).start()
            else:
                time.sleep(3600)  # hang: the process lives, the API never answers
        body = b'{"system": {"comfyui_version": "flaky"}, "devices": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print(f"flaky server start {start_no} on {port} ({mode})", file=sys.stderr, flush=True)
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
