"""Skills for an assistant: one short on-demand page per area of this suite, generated from the notebooks' own
headings and prose and from the `pistachio` parser's verbs, so they cannot drift from the manual or the CLI.

Every command is one line (a pasted multi-line command is how the seed project broke); each page opens with
the line that says when to load it, and `README.md` lists those lines as the only always-loaded index.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..files import write_text
from ..paths import resolve
from .inventory import estimate_tokens

INDEX = "README.md"
MAX_LINES = 100
REGENERATE = "pistachio knowledge skills"
PARAM_LINE = re.compile(r"^(\w+)\s*:[^=]+=.*?#\s*(.+)$")
FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(?:\s|$)")


@dataclass(frozen=True)
class Area:
    slug: str
    title: str
    when: str  # the "when to load" line
    notebooks: tuple[str, ...]
    keywords: tuple[str, ...]  # a CLI verb whose name (or, failing that, help) holds one of these belongs here


AREAS = (
    Area("pod-operations", "Pod operations", "setting up or checking a pod: pinned environment, model downloads, "
         "health checks, the ComfyUI watchdog, headless runs from cron", ("00_setup",),
         ("health", "models", "watchdog", "check-env", "run", "prepare", "pod", "env")),
    Area("dataset-and-captions", "Dataset and captions", "turning photos into a training set: dedup, quality, "
         "holdout split, buckets, captions with the trigger word", ("01_dataset", "02_captioning"),
         ("dataset", "caption", "photo")),
    Area("lora-training", "LoRA training", "training or resuming an SDXL LoRA of the character: steps, learning "
         "rate, samples, checkpoints, export", ("03_training",), ("train", "lora")),
    Area("checkpoint-evaluation", "Checkpoint evaluation", "choosing which LoRA checkpoint to use: identity, "
         "prompt following, memorization, the side-by-side comparison", ("04_checkpoints",),
         ("checkpoint", "evaluat", "compare")),
    Area("comfyui-automation", "ComfyUI automation", "generating images through ComfyUI: workflows and bindings, "
         "batch runs from a prompts file, the generation API", ("06_batch_generation",),
         ("comfy", "workflow", "batch", "serve", "generat")),
    Area("inpainting", "Inpainting", "fixing part of a picture (hands, face, background) with a mask and the LoRA",
         ("05_inpainting",), ("inpaint", "mask")),
)


@dataclass(frozen=True)
class Verb:
    command: str  # one line: `pistachio <verb path> <required arguments>`
    help: str


def cli_verbs(parser: argparse.ArgumentParser | None = None) -> list[Verb]:
    """Every leaf command of the `pistachio` parser with its required arguments, read from argparse itself."""
    if parser is None:
        from ..cli import build_parser

        parser = build_parser()
    return _walk(parser, "pistachio", "")


def _walk(parser: argparse.ArgumentParser, path: str, help_text: str) -> list[Verb]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [Verb(" ".join([path, *_required(parser)]), help_text)]
    helps = {a.dest: a.help or "" for a in subs[0]._choices_actions}
    return [v for name, sub in subs[0].choices.items() for v in _walk(sub, f"{path} {name}", helps.get(name, ""))]


def _required(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for a in parser._actions:
        if not a.option_strings:
            out.append(f"-- <{a.metavar or a.dest}>" if a.nargs == argparse.REMAINDER else f"<{a.metavar or a.dest}>")
        elif a.required:
            value = "params/pod.yaml" if a.dest == "params" else (a.metavar or a.dest.upper())
            out.append(f"{a.option_strings[-1]} {value}")
    return out


def area_of(verb: Verb) -> Area:
    """The area a verb belongs to: by its name first, then by its help text; pod operations otherwise."""
    name = verb.command.split(" <")[0].split(" --")[0]
    for text in (name, verb.help.lower()):
        for area in AREAS:
            if any(re.search(rf"\b{re.escape(k)}", text) for k in area.keywords):
                return area
    return AREAS[0]


@dataclass(frozen=True)
class NotebookProse:
    name: str
    title: str
    intro: str
    steps: tuple[tuple[str, str], ...]  # (heading, its first sentence)
    params: tuple[tuple[str, str], ...]  # (field, its comment)


def _first_sentence(text: str) -> str:
    """The first sentence of the first paragraph (a list or code below it is not summarised)."""
    paragraph = text.strip().split("\n\n", 1)[0]
    flat = " ".join(line.strip() for line in paragraph.splitlines() if not line.startswith("#"))
    flat = re.sub(r"\s+", " ", flat)
    match = FIRST_SENTENCE.match(flat)
    return (match[1] if match else flat).strip()


def read_notebook(path: Path) -> NotebookProse:
    """The title, first sentence, level-2 headings (each with its first sentence) and parameters of a notebook."""
    nb = nbformat.read(path, as_version=4)
    title, intro, steps, params = path.stem, "", [], []
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            params = [(m[1], m[2].strip()) for line in cell.source.splitlines() if (m := PARAM_LINE.match(line))]
        if cell.cell_type != "markdown":
            continue
        for block in re.split(r"(?m)^(?=#{1,2} )", cell.source):
            head, _, body = block.partition("\n")
            if head.startswith("# ") and not intro:
                title, intro = head[2:].strip(), _first_sentence(body)
            elif head.startswith("## ") and head[3:].strip() != "Parameters":
                steps.append((head[3:].strip(), _first_sentence(body)))
    return NotebookProse(path.stem, title, intro, tuple(steps), tuple(params))


def render_skill(area: Area, notebooks: list[NotebookProse], verbs: list[Verb]) -> str:
    """One skill page: when to load it, what each notebook does, its steps, one-line commands, its parameters."""
    lines = [f"# Skill: {area.title}", "", f"When to load: {area.when}.", "",
             f"From {', '.join(f'notebooks/{nb.name}.ipynb' for nb in notebooks)} and the CLI; `{REGENERATE}` "
             "rewrites it.", ""]  # short: a sentence repeated on every page would count as a copy
    for nb in notebooks:
        lines += [f"## {nb.title}", "", nb.intro, "", *[f"- **{h}**: {s}" for h, s in nb.steps], ""]
    lines += ["## Commands", "", "One line each, run from the repository root on the pod.", ""]
    lines += [f"- `pistachio run {nb.name} --params params/pod.yaml`" for nb in notebooks]
    lines += [f"- `{v.command}`: {v.help}" for v in verbs]
    lines += [""]
    described = [f"- `{n}`: {c}" for nb in notebooks for n, c in nb.params]
    room = MAX_LINES - len(lines) - 3 * len(notebooks)
    for nb in notebooks:  # one line per parameter while the page stays under MAX_LINES, else their names only
        listed = ([f"- `{n}`: {c}" for n, c in nb.params] if len(described) <= room
                  else [", ".join(f"`{n}`" for n, _ in nb.params) + f" (meanings: the parameters cell of {nb.name})"])
        lines += [f"## Parameters of {nb.name} (`--set NAME=VALUE`)", "", *listed, ""]
    return "\n".join(lines).rstrip() + "\n"


def render_skills(notebooks_dir: str | Path = "notebooks", parser: argparse.ArgumentParser | None = None) -> dict[str, str]:
    """{file name: text} for every skill page and the README index."""
    folder = resolve(notebooks_dir)
    verbs = [v for v in cli_verbs(parser) if not v.command.startswith("pistachio run ")]  # run: per notebook
    pages = {}
    for area in AREAS:
        notebooks = [read_notebook(folder / f"{name}.ipynb") for name in area.notebooks if (folder / f"{name}.ipynb").is_file()]
        pages[f"{area.slug}.md"] = render_skill(area, notebooks, [v for v in verbs if area_of(v) is area])
    index = ["# Skills", "", "Short pages for an assistant, one per area of the Pistachio suite. Only this index is "
             "loaded up front: read a page when the task matches its line.", ""]
    index += [f"- `{area.slug}.md`: {area.when}." for area in AREAS]
    pages[INDEX] = "\n".join(index) + f"\n\nGenerated by `{REGENERATE}`; do not edit by hand.\n"
    return pages


def skills_table(folder: str | Path) -> "pd.DataFrame":
    """Per skill file: its when-to-load line, lines, estimated tokens and whether every command is one line."""
    import pandas as pd

    rows = []
    for path in sorted(resolve(folder).glob("*.md")):
        text = path.read_text()
        when = next((line.removeprefix("When to load: ") for line in text.splitlines() if line.startswith("When to load:")), "")
        rows.append({"skill": path.name, "when_to_load": when, "lines": len(text.splitlines()),
                     "tokens": estimate_tokens(text), "one_line_commands": "```" not in text})
    return pd.DataFrame(rows, columns=["skill", "when_to_load", "lines", "tokens", "one_line_commands"])


def skeleton(text: str) -> tuple[list[str], list[str]]:
    """What must stay in sync: the notebook headings (`- **heading**`) and the commands of a page."""
    return re.findall(r"(?m)^- \*\*(.+?)\*\*:", text), re.findall(r"(?m)^- `(pistachio [^`]+)`", text)


def write_skills(dest: str | Path = "skills", check: bool = False) -> list[str]:
    """Write the pages that differ from what is generated now (or only list them with `check`); returns their names."""
    folder = resolve(dest)
    changed = []
    for name, text in render_skills().items():
        path = folder / name
        if not path.is_file() or path.read_text() != text:
            changed.append(name)
            if not check:
                write_text(path, text)
    return changed
