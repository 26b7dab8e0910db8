"""The README's commands as data: fenced code blocks by language, their shell commands, the cron lines."""

from __future__ import annotations

import re

from .conftest import ROOT

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL_LANGS = ("bash", "sh", "shell", "console")


def code_blocks(lang: str, text: str | None = None) -> list[str]:
    """Bodies of the README's fenced blocks tagged `lang` (in order)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8") if text is None else text
    return [body for tag, body in FENCE.findall(text) if tag == lang]


def shell_commands() -> list[str]:
    """Every command line of the shell blocks: comments dropped, `\\` continuations joined."""
    lines = [line for lang in SHELL_LANGS for block in code_blocks(lang) for line in block.replace("\\\n", " ").splitlines()]
    return [cmd for cmd in (line.split(" #")[0].strip() for line in lines) if cmd and not cmd.startswith("#")]


def cron_lines() -> list[tuple[list[str], str]]:
    """Each cron entry as (its five time fields, the command)."""
    entries = []
    for block in code_blocks("cron"):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" not in line.split()[0]:
                fields = line.split(None, 5)
                entries.append((fields[:5], fields[5]))
    return entries


def serve_demo_lines() -> list[str]:
    """The lines of the generation-API section's shell blocks (the round trip tests/test_serve_readme.py runs)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The generation API"):]
    section = section[:section.index("\n## ", 1)]
    return [line.strip() for block in code_blocks("bash", section) for line in block.splitlines() if line.strip()]
