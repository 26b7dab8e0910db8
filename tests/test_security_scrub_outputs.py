"""Secrets outside rendered notebooks: `pistachio models` output, 00_setup's CSVs and the watchdog's lines and
crash log all go through `secrets.scrub`, which also masks credentials carried by URLs."""

from __future__ import annotations

import hashlib
import json
import sys

import pandas as pd
import pytest

from pistachio_nb.cli import main
from pistachio_nb.files import read_jsonl
from pistachio_nb.paths import repo_root
from pistachio_nb.pod import check_pod
from pistachio_nb.secrets import scrub, url_credentials
from pistachio_nb.watchdog import WatchdogConfig, run_watchdog

from .test_downloads import PAYLOAD, ErrorHandler, manifest, served  # noqa: F401 - served is a fixture
from .test_pod_check import params as setup_values
from .test_watchdog import free_port

PASSWORD = "mirrorPass8421"


@pytest.mark.parametrize("text,expected", [
    ("GET https://civitai.com/api/download/models/7?type=Model&token=abc123xyz ok",
     "GET https://civitai.com/api/download/models/7?type=Model&token=*** ok"),
    ("https://alice:s3cret@host.example/x", "https://***@host.example/x"),
    ("https://ghp_abcdef123@github.com/o/r.git", "https://***@github.com/o/r.git"),
    ("u=https://h/x?api_key=K1&key=K2&access_token=K3&X-Amz-Signature=K4#frag",
     "u=https://h/x?api_key=***&key=***&access_token=***&X-Amz-Signature=***#frag"),
    ("<a href=\"https://h/x?a=1&amp;token=K1\">", "<a href=\"https://h/x?a=1&amp;token=***\">"),
    ("max_new_tokens=5, key_size=3, me@example.org, https://h/x?monkey=1", None),
])
def test_scrub_masks_url_credentials(text, expected):
    assert scrub(text, environ={}) == (text if expected is None else expected)


def test_url_credentials_names_the_parts():
    assert url_credentials("https://u:p@h/x?token=1&b=2") == ["userinfo", "token"]
    assert url_credentials("https://h/x?type=Model") == []


def _hub_manifest(tmp_path):
    return manifest(tmp_path, [{"name": "hub", "source": {"hf_repo": "org/repo", "filename": "weights.safetensors"},
                                "dest": "checkpoints", "sha256": hashlib.sha256(PAYLOAD).hexdigest()}])


def test_pistachio_models_prints_no_url_credential(tmp_path, served, monkeypatch, capsys):
    server = served(ErrorHandler)
    monkeypatch.setenv("HF_ENDPOINT", server.url.replace("http://", f"http://mirror:{PASSWORD}@"))
    (tmp_path / "out").mkdir()
    code = main(["models", "--params", str(repo_root() / "params" / "demo.yaml"),
                 "--set", f"workspace={tmp_path / 'ws'}", "--set", f"comfy_output_dir={tmp_path / 'out'}",
                 "--set", f"models_manifest={_hub_manifest(tmp_path)}", "--set", f"comfy_models_dir={tmp_path / 'models'}"])
    out = capsys.readouterr()
    assert code == 1 and "failed" in out.out and "http://***@127.0.0.1" in out.out
    assert PASSWORD not in out.out + out.err


def test_setup_models_csv_stores_no_url_credential(tmp_path, served, monkeypatch):
    server = served(ErrorHandler)
    monkeypatch.setenv("HF_ENDPOINT", server.url.replace("http://", f"http://mirror:{PASSWORD}@"))
    report = check_pod(setup_values(tmp_path, server.url, comfy_timeout_s=1, models_manifest=_hub_manifest(tmp_path),
                                    required_models=[]))
    assert report.models["status"].tolist() == ["failed"] and PASSWORD not in report.models.to_string()
    written = (tmp_path / "ws" / "setup" / "models.csv").read_text()
    assert "http://***@" in written and PASSWORD not in written
    assert pd.read_csv(tmp_path / "ws" / "setup" / "models.csv")["status"].tolist() == ["failed"]


def test_watchdog_lines_and_crash_log_carry_no_secret(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("COMFY_API_KEY", "envsecret_55aa77")
    url = "https://civitai.com/api/download/models/1?token=urltoken_99zz&b=1"
    code = "import sys, os; sys.stderr.write('boom ' + sys.argv[1] + ' ' + os.environ['COMFY_API_KEY'] + '\\n'); sys.exit(3)"
    cmd = [sys.executable, "-c", code, url, "--api-key=envsecret_55aa77"]
    cfg = WatchdogConfig(url=f"http://127.0.0.1:{free_port()}", crash_log=tmp_path / "crashes.jsonl", poll_interval=0.1,
                         poll_timeout=0.2, startup_grace=10.0, backoff_initial=0.1, stop_timeout=2.0)
    lines: list[str] = []
    crashes = run_watchdog(cmd, cfg, max_restarts=0, echo=lines.append)
    passed_through = capfd.readouterr().err
    logged = (tmp_path / "crashes.jsonl").read_text()
    assert len(crashes) == 1 and read_jsonl(cfg.crash_log)[0]["exit_code"] == 3
    assert "boom https://civitai.com/api/download/models/1?token=***&b=1 ***" in passed_through
    for text in (passed_through, logged, "\n".join(lines), json.dumps(crashes)):
        assert "urltoken_99zz" not in text and "envsecret_55aa77" not in text
    assert lines[0].startswith("started pid") and "token=***" in lines[0]
    assert read_jsonl(cfg.crash_log)[0]["command"][3] == "https://civitai.com/api/download/models/1?token=***&b=1"


def test_cli_error_messages_are_scrubbed(tmp_path, monkeypatch, capsys):
    from pistachio_nb.cli import main

    secret = "hf_CliErrorSecret0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    missing = tmp_path / f"profile-{secret}.yaml"  # the error names the file, which here carries the secret
    assert main(["run", "00_setup", "--params", str(missing)]) == 2
    err = capsys.readouterr().err
    assert secret not in err and "profile-***" in err
