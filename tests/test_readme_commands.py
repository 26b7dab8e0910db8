"""Every shell command of the README is run (the cheap ones) or validated (profiles load, `--set` names exist).

`make demo` / `make test` are not run here (they are the suite): their targets must exist and parse.
Commands that touch the pod's folders run with `/workspace` and `HOME` moved to a temp root.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess

import pytest

from pistachio_nb.cli import build_parser
from pistachio_nb.errors import ParamsError
from pistachio_nb.paths import resolve
from pistachio_nb.profiles import load_profile, parse_sets, resolve_values
from pistachio_nb.runner import select_notebooks, validate_run

from .conftest import ROOT
from pistachio_nb.serve.service import serve_settings

from .readme_commands import code_blocks, cron_lines, serve_demo_lines, shell_commands

README = (ROOT / "README.md").read_text(encoding="utf-8")
SET_FIELD = re.compile(r"^\s+(\w+):.*#\s*SET:", re.MULTILINE)
FILE_COMMANDS = ("mkdir ", "install ", "ln ", "chmod ", "cp ")
SERVE_DEMO = ("export PISTACHIO_API_KEYS=", "KEY=", "ID=", "curl ")


def validate_pistachio(argv: list[str]) -> str:
    """Parse like the CLI, then validate the profile's values for the notebooks the command would use."""
    args = build_parser().parse_args(argv)
    if args.command in ("run", "prepare"):
        plans = validate_run(select_notebooks(args.notebook), load_profile(resolve(args.params)), parse_sets(args.set),
                             check_paths=False)  # the pod's own folders do not exist on this machine
        assert plans
    elif args.command == "health" or (args.command == "pod" and getattr(args, "params", None)):
        resolve_values(select_notebooks("00_setup")[0], load_profile(resolve(args.params)), parse_sets(args.set),
                       check_paths=False)
    elif args.command == "serve":  # its 06 section and serve: settings (tests/test_serve_readme.py runs it)
        profile = load_profile(resolve(args.params))
        resolve_values(select_notebooks("06_batch_generation")[0], profile, parse_sets(args.set), check_paths=False)
        serve_settings(profile.serve, str(profile.path))
    return args.command


def run_file_command(command: str, tmp_path) -> None:
    """A mkdir / install / ln line, with `/workspace` and `~` under the temp root."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    moved = command.replace("/workspace/", f"{tmp_path}/workspace/")
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    subprocess.run(["/bin/sh", "-c", moved], check=True, env=env, timeout=30)


def test_every_readme_shell_command_runs_or_validates(tmp_path):
    commands = shell_commands()
    assert len(commands) >= 8
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1).split()
    seen = set()
    for command in commands:
        argv = shlex.split(command)
        if argv[0] == "make":
            assert argv[1] in phony, command
            subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, check=True, capture_output=True, timeout=60)
            seen.add("make")
        elif argv[0] == ".venv/bin/pistachio":
            verb = validate_pistachio(argv[1:])
            if verb == "check-env":  # cheap: run it for real
                proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
                assert proc.returncode == 0 and "every package matches" in proc.stdout, proc.stdout + proc.stderr
            seen.add(verb)
        elif command.startswith(SERVE_DEMO):
            assert command in serve_demo_lines(), command  # run for real by tests/test_serve_readme.py
            seen.add("serve-demo")
        elif command.startswith(FILE_COMMANDS):
            run_file_command(command, tmp_path)
            seen.add("files")
        else:
            pytest.fail(f"README command with no rule in this test: {command!r}")
    assert {"make", "files", "check-env", "health", "lab", "prepare", "run", "pod", "serve", "serve-demo"} <= seen
    env_file = tmp_path / "home" / ".config" / "pistachio" / "env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # the README's way makes an owner-only file
    assert (tmp_path / "workspace" / "pistachio-data" / "source_images").is_dir()


def test_the_readme_example_override_is_a_real_field():
    (run_all,) = [c for c in shell_commands() if " run all " in c and "--set" in c]
    assert "max_steps=" in run_all
    bad = shlex.split(run_all.replace("max_steps=", "max_train_steps="))[1:]
    with pytest.raises(ParamsError, match="max_train_steps"):
        validate_pistachio(bad)


def test_the_cron_line_parses_and_validates_against_the_pod_profile():
    (entry,) = cron_lines()
    fields, command = entry
    assert len(fields) == 5 and "%" not in command
    cd, pistachio = command.split(" && ")
    assert cd == "cd /workspace/pistachio"
    argv = shlex.split(pistachio)
    assert argv[0] == ".venv/bin/pistachio" and validate_pistachio(argv[1:]) == "run"
    args = build_parser().parse_args(argv[1:])
    assert args.gate == "health" and args.log is not None


def test_every_set_marker_of_the_pod_profile_is_explained():
    fields = set(SET_FIELD.findall((ROOT / "params" / "pod.yaml").read_text()))
    assert {"source_dir", "prompts_file", "image", "kb_root", "comfy_models_dir"} <= fields
    pod_section = README[README.index("## On the pod"):]
    missing = [f for f in sorted(fields) if f"`{f}`" not in pod_section]
    assert not missing, f"params/pod.yaml SET: fields the README's pod section does not name: {missing}"


def test_the_readme_says_what_each_notebook_needs_first():
    table = README[README.index("What each notebook needs before"):]
    for notebook in select_notebooks("all"):
        assert re.search(rf"^\s*\| `{notebook.stem}` \| \S", table, re.MULTILINE), notebook.stem
    assert code_blocks("cron")  # and the cron block is there (run by tests/test_cron.py)
