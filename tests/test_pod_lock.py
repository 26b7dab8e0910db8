"""pod lock / verify / start on a fake pod: drift is reported per row, start restores the locked commits, a
second start changes nothing, a node that does not install stops the start with its name."""

from __future__ import annotations

import shutil
import time

import pytest
import yaml

from pistachio_nb.cli import main
from pistachio_nb.pod.gitstate import GitError, read_checkout
from pistachio_nb.pod.hashcache import HashCache
from pistachio_nb.pod.lock import PodLayout, read_lock, read_pod, write_lock
from pistachio_nb.pod.start import PodStartError, start_pod
from pistachio_nb.pod.verify import compare, drifted
from tests.fake_pod import git, make_fake_pod


@pytest.fixture
def pod(tmp_path):
    return make_fake_pod(tmp_path)


def locked(pod, tmp_path):
    layout = PodLayout.of(pod.comfy_dir, pod.python)
    cache = HashCache(tmp_path / "state" / "sha256-cache.json")
    path = write_lock(tmp_path / "pod.lock.yaml", read_pod(layout, cache))
    return layout, read_lock(path), path


def statuses(table):
    return dict(zip(table["check"], table["status"]))


def test_lock_records_commits_packages_and_model_hashes_without_credentials(pod, tmp_path):
    git(pod.comfy_dir, "remote", "set-url", "origin", "https://user:ghp_secret123@example.com/ComfyUI.git")
    layout, lock, path = locked(pod, tmp_path)
    assert lock["comfyui"] == {"remote": "https://example.com/ComfyUI.git", "commit": pod.comfy_commits[0], "dirty": False}
    assert {n["name"]: n["commit"] for n in lock["custom_nodes"]} == {k: v[0] for k, v in pod.node_commits.items()}
    assert {m["path"] for m in lock["models"]} == {"checkpoints/base.safetensors", "loras/character.safetensors"}
    assert lock["packages"]["requests"] and lock["packages"]["torch"].startswith("2.14.1")
    assert "ghp_secret123" not in path.read_text() and yaml.safe_load(path.read_text())["version"] == 1
    assert not drifted(compare(lock, read_pod(layout, HashCache(tmp_path / "state" / "sha256-cache.json"))))


def test_verify_names_a_moved_node_and_changed_model_bytes_and_the_cli_exits_1(pod, tmp_path, capsys):
    layout, lock, path = locked(pod, tmp_path)
    git(pod.comfy_dir / "custom_nodes" / "NodeA", "checkout", "--quiet", "--detach", pod.node_commits["NodeA"][1])
    (pod.models_dir / "loras" / "character.safetensors").write_bytes(b"other bytes")
    table = compare(lock, read_pod(layout, HashCache(tmp_path / "state" / "sha256-cache.json")))
    got = statuses(table)
    assert got["node NodeA"] == "FAIL" and got["model loras/character.safetensors"] == "FAIL"
    assert got["node NodeB"] == "PASS" and got["ComfyUI commit"] == "PASS" and got["model checkpoints/base.safetensors"] == "PASS"
    assert "pod start" in table.set_index("check").loc["node NodeA", "fix"]
    code = main(["pod", "verify", "--comfy-dir", str(pod.comfy_dir), "--python", str(pod.python), "--lock", str(path),
                 "--state-dir", str(tmp_path / "state")])
    assert code == 1 and "FAIL: the pod drifted" in capsys.readouterr().out


def test_start_restores_the_locked_commits_and_a_second_start_is_a_no_op(pod, tmp_path):
    layout, lock, _ = locked(pod, tmp_path)
    git(pod.comfy_dir, "checkout", "--quiet", "--detach", pod.comfy_commits[1])
    git(pod.comfy_dir / "custom_nodes" / "NodeA", "checkout", "--quiet", "--detach", pod.node_commits["NodeA"][1])
    shutil.rmtree(pod.comfy_dir / "custom_nodes" / "NodeB")  # a node lost: cloned again from its remote
    t0 = time.monotonic()
    first = start_pod(lock, layout, tmp_path / "state", services=None)
    restore_s = time.monotonic() - t0
    assert read_checkout(pod.comfy_dir).commit == pod.comfy_commits[0]
    for name, commits in pod.node_commits.items():
        assert read_checkout(pod.comfy_dir / "custom_nodes" / name).commit == commits[0]
    assert first.changed and "NodeB: cloned" in first.table().set_index("step").loc["custom nodes", "did"]
    t0 = time.monotonic()
    second = start_pod(lock, layout, tmp_path / "state", services=None)
    noop_s = time.monotonic() - t0
    assert not second.changed, second.table()
    assert list(second.table()["did"]) == ["ok"] * 5
    print(f"restore from lock {restore_s:.2f} s, second start {noop_s:.2f} s")
    assert noop_s < restore_s


def test_a_node_whose_requirements_fail_stops_the_start_with_its_name(tmp_path):
    pod = make_fake_pod(tmp_path, bad_node=True)
    layout, lock, _ = locked(pod, tmp_path)
    shutil.rmtree(pod.comfy_dir / "custom_nodes" / "NodeBad")
    with pytest.raises(PodStartError, match="custom node NodeBad: its requirements did not install"):
        start_pod(lock, layout, tmp_path / "state")
    report = (tmp_path / "state" / "start-report.json").read_text()
    assert '"FAIL"' in report and "NodeBad" in report


def test_start_refuses_a_checkout_with_local_edits_and_changes_nothing(pod, tmp_path):
    layout, lock, _ = locked(pod, tmp_path)
    node = pod.comfy_dir / "custom_nodes" / "NodeA"
    git(node, "checkout", "--quiet", "--detach", pod.node_commits["NodeA"][1])
    (node / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}  # my edit\n")
    with pytest.raises(GitError, match="has local edits"):
        start_pod(lock, layout, tmp_path / "state")
    assert (node / "__init__.py").read_text() == "NODE_CLASS_MAPPINGS = {}  # my edit\n"
    assert read_checkout(node).commit == pod.node_commits["NodeA"][1]


def test_models_folder_is_linked_to_the_volume_only_when_that_loses_nothing(pod, tmp_path):
    layout, lock, _ = locked(pod, tmp_path)
    volume = tmp_path / "volume-models"
    with pytest.raises(PodStartError, match="already holds files"):
        start_pod(lock, layout, tmp_path / "state", models_volume=volume)
    assert (pod.models_dir / "loras" / "character.safetensors").is_file()
    shutil.move(str(pod.models_dir), str(volume))
    start_pod(lock, layout, tmp_path / "state", models_volume=volume)
    assert pod.models_dir.is_symlink() and pod.models_dir.resolve() == volume.resolve()


def pod_start_args(text: str) -> list[str]:
    """The arguments of the `pistachio pod start` line in a Dockerfile or script (continuations joined, vars filled)."""
    import re
    import shlex

    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    joined = re.sub(r"\\\n\s*", " ", code)
    line = re.search(r"pistachio pod start([^\n&]*)", joined).group(1)
    return ["pod", "start", *shlex.split(re.sub(r"\$\{?(\w+)\}?", r"/var/\1", line))]


def test_the_dockerfile_passes_hadolint_and_its_pod_start_lines_parse():
    import subprocess
    import sys
    from pathlib import Path

    from pistachio_nb.cli import build_parser
    from pistachio_nb.paths import repo_root

    hadolint = Path(sys.executable).with_name("hadolint")
    done = subprocess.run([str(hadolint), "--failure-threshold", "info", str(repo_root() / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    dockerfile, boot = (repo_root() / "Dockerfile").read_text(), (repo_root() / "docker" / "boot.sh").read_text()
    assert "HEALTHCHECK" in dockerfile and "pistachio health" in dockerfile and "docker/boot.sh" in dockerfile
    assert subprocess.run(["bash", "-n", str(repo_root() / "docker" / "boot.sh")]).returncode == 0
    build = build_parser().parse_args(pod_start_args(dockerfile))
    assert build.build_only and build.lock == "params/pod.lock.yaml"
    start = build_parser().parse_args(pod_start_args(boot))
    assert not start.build_only and start.models_volume and start.params == "params/pod.yaml"


def test_services_start_under_supervisord_once_and_a_second_start_changes_nothing():
    import sys
    import tempfile
    from pathlib import Path

    from pistachio_nb.pod.supervise import Program, stop_supervisor, supervise, wait_healthy
    from pistachio_testkit.real_comfyui import free_port

    state = Path(tempfile.mkdtemp(prefix="sv-", dir="/tmp"))  # a unix socket path must stay under 108 bytes
    port = free_port()
    programs = {"comfyui": Program([sys.executable, "-m", "pistachio_testkit.comfy_server", "--port", str(port)], Path.cwd())}
    try:
        assert supervise(programs, state) == "started supervisord: comfyui"
        assert "answers" in wait_healthy(f"http://127.0.0.1:{port}", 60)
        assert supervise(programs, state) == "ok"
        assert "[program:comfyui]" in (state / "supervisord.conf").read_text() and oct((state / "supervisor.sock").stat().st_mode)[-3:] == "700"
    finally:
        stop_supervisor(state)
        shutil.rmtree(state, ignore_errors=True)


def test_00_setups_lock_table_compares_the_pod_or_says_how_to_make_a_lock(pod, tmp_path):
    from types import SimpleNamespace

    from pistachio_nb.pod import pod_lock_table

    _, _, path = locked(pod, tmp_path)
    p = SimpleNamespace(comfy_models_dir=pod.models_dir, comfy_dir=pod.comfy_dir, comfy_python=pod.python, pod_lock=path)
    table = pod_lock_table(p)
    assert set(table["status"]) <= {"PASS", "WARN"} and "node NodeA" in set(table["check"])
    missing = pod_lock_table(SimpleNamespace(comfy_models_dir=pod.models_dir, comfy_dir=None, comfy_python=None, pod_lock=None))
    assert list(missing["status"]) == ["WARN"] and "pistachio pod lock --comfy-dir" in missing["fix"][0]
    plain = tmp_path / "plain" / "models"
    plain.mkdir(parents=True)
    broken = pod_lock_table(SimpleNamespace(comfy_models_dir=plain, comfy_dir=None, comfy_python=pod.python, pod_lock=path))
    assert list(broken["status"]) == ["FAIL"] and "not a git checkout" in broken["found"][0]
