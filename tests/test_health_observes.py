"""Health observes and never creates: a missing workspace stays missing, an unmounted pod volume is a FAIL."""

from __future__ import annotations

import socket
from pathlib import Path

from pistachio_nb import health

from .test_health import setup_params


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_health_report_never_creates_the_workspace_it_checks(tmp_path):
    report = health.health_report(setup_params(tmp_path, _dead_url(), comfy_timeout_s=1)).set_index("check")
    assert report.loc["writable: workspace", "status"] == "FAIL"
    assert "does not exist" in report.loc["writable: workspace", "found"]
    assert report.loc["writable: ComfyUI output", "status"] == "FAIL"
    assert not (tmp_path / "ws").exists() and not (tmp_path / "out").exists()


def test_workspace_on_a_plain_folder_of_the_root_filesystem_fails(tmp_path):
    volume = tmp_path / "workspace"
    volume.mkdir()
    (row,) = health.check_volume(volume / "pistachio-data" / "character", volume, system_root=tmp_path)
    assert row.status == "FAIL" and "same filesystem" in row.found and "network volume" in row.fix
    (row,) = health.check_volume(tmp_path / "gone" / "ws", tmp_path / "gone", system_root=tmp_path)
    assert row.status == "FAIL" and "does not exist" in row.found


def test_workspace_on_a_real_mount_passes_and_other_places_are_not_judged(tmp_path):
    mount = Path("/dev/shm")  # a mount point on any Linux machine
    (row,) = health.check_volume(mount / "pistachio-ws", mount)
    assert row.status == "PASS" and "mount of its own" in row.found
    assert health.check_volume(tmp_path / "ws", Path("/workspace")) == []  # the demo: no volume to judge


def test_health_report_has_the_volume_row_for_a_workspace_below_the_volume(tmp_path, monkeypatch):
    volume = tmp_path / "workspace"
    (volume / "ws").mkdir(parents=True)
    monkeypatch.setattr(health, "POD_VOLUME", volume)
    monkeypatch.setattr(health.check_volume, "__defaults__", (volume, tmp_path))
    report = health.health_report(setup_params(tmp_path, _dead_url(), comfy_timeout_s=1, workspace=volume / "ws"))
    row = report.set_index("check").loc[f"workspace on the volume ({volume})"]
    assert row["status"] == "FAIL" and "container disk" in row["found"]
