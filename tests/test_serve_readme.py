"""The README's generation-API round trip, run as written: the export line, `pistachio serve` on the demo
profile, then the curl lines with bash (only the port is moved to a free one and the workspace to a temp folder).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time

import requests
from safetensors.torch import save_file

from pistachio_testkit.real_comfyui import free_port

from .conftest import ROOT
from .readme_commands import serve_demo_lines


def test_the_readme_round_trip_gets_a_png(tmp_path):
    export, serve, *client = serve_demo_lines()
    assert export.startswith("export PISTACHIO_API_KEYS=") and " serve --params params/demo.yaml" in serve
    keys = subprocess.run(["bash", "-c", f"{export} && printf %s \"$PISTACHIO_API_KEYS\""], capture_output=True,
                          text=True, check=True).stdout
    assert keys.startswith("chatbot:") and len(keys) > 40
    port = free_port()
    workspace = tmp_path / "ws"
    (workspace / "comfy" / "models" / "loras").mkdir(parents=True)  # what 04 of `make demo` publishes there
    save_file({}, str(workspace / "comfy" / "models" / "loras" / "pstchio.safetensors"))
    argv = shlex.split(serve.replace("--port 8000", f"--port {port}")) + ["--set", f"workspace={workspace}"]
    env = {**os.environ, "PISTACHIO_API_KEYS": keys}
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "serve did not get ready"
                time.sleep(0.2)
            key, submit, status, image = (line.replace(":8000/", f":{port}/") for line in client)
            script = "\n".join([key, submit, f'for i in $(seq 100); do S=$({status}); case "$S" in *\\"done\\"*) break;; esac; '
                                f"sleep 0.2; done", 'echo "$S"', image])
            done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        finally:
            proc.terminate()
            proc.wait(30)
    assert done.returncode == 0, done.stderr
    assert '"state":"done"' in done.stdout.replace(" ", "")
    assert (tmp_path / "generated.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
