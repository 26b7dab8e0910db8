"""Personal data stays out of git: a workspace or input inside the checkout must be git-ignored there."""

from __future__ import annotations

import subprocess

import pytest

from pistachio_nb.cli import main
from pistachio_nb.gitguard import DataInCheckoutError, check_outside_git
from pistachio_nb.runner import EXIT_PARAMS

from .conftest import ROOT


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "clone"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("outputs/\n")
    (root / "params").mkdir()
    (root / "params" / "prompts-demo.csv").write_text("prompt\n")
    subprocess.run(["git", "-C", str(root), "add", ".gitignore", "params"], check=True)
    return root.resolve()


def test_workspace_inside_the_checkout_is_refused_unless_ignored(repo, tmp_path):
    with pytest.raises(DataInCheckoutError) as err:
        check_outside_git("workspace", repo / "character", written=True, root=repo)
    message = str(err.value)
    assert f"workspace: {repo / 'character'}" in message and "not git-ignored" in message
    assert "/workspace/pistachio-data/" in message and ".git/info/exclude" in message  # the fix, both ways
    check_outside_git("workspace", repo / "outputs" / "character", written=True, root=repo)  # ignored: fine
    check_outside_git("workspace", tmp_path / "data" / "character", written=True, root=repo)  # outside: fine
    with pytest.raises(DataInCheckoutError, match="checkout"):
        check_outside_git("workspace", repo, written=True, root=repo)


def test_inputs_the_repo_ships_pass_but_loose_personal_files_are_refused(repo):
    check_outside_git("prompts_file", repo / "params" / "prompts-demo.csv", written=False, root=repo)  # tracked
    (repo / "prompts.csv").write_text("prompt\nmy secret idea\n")
    with pytest.raises(DataInCheckoutError, match=r"prompts_file: .*prompts\.csv is inside the git checkout"):
        check_outside_git("prompts_file", repo / "prompts.csv", written=False, root=repo)
    photos = repo / "source_images"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (photos / name).write_bytes(b"\xff\xd8")
    with pytest.raises(DataInCheckoutError, match=r"2 untracked file\(s\), e\.g\. source_images/a\.jpg"):
        check_outside_git("source_dir", photos, written=False, root=repo)
    (repo / ".git" / "info" / "exclude").write_text("source_images/\n")  # the fix the message names
    check_outside_git("source_dir", photos, written=False, root=repo)


def test_a_run_refuses_a_workspace_in_this_checkout_before_creating_it(capsys):
    workspace = ROOT / "character-data-not-ignored"
    code = main(["prepare", "06_batch_generation", "--params", str(ROOT / "params" / "demo.yaml"),
                 "--set", f"workspace={workspace}"])
    err = capsys.readouterr().err
    assert code == EXIT_PARAMS and f"workspace: {workspace} is inside the git checkout" in err and "fix:" in err
    assert not workspace.exists()
