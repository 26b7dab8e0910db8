"""Text of the demo knowledge base: an assistant's instructions, notes and manuals with planted problems.

Planted: a blank template that is always loaded; a paragraph copied (with small edits) into three
files; a known-issue paragraph copied from the learnings into the progress notes; `kb/ComfyUI.md`
beside `kb/comfyui.md`; old sections whose headings newer files cover; a superseded pod id and base
model; a learned-mistakes list that grows commit after commit. `kb/captioning.md` is the clean file.
"""

from __future__ import annotations

DRIFT_CHECK = (
    "Before training, always run the dependency drift check against requirements-pinned.txt. Last time a "
    "silent upgrade of diffusers changed the LoRA key names and the checkpoint would not load in ComfyUI, "
    "which cost a whole day of pod time."
)
# The same advice as it drifted while being pasted into other files.
DRIFT_CHECK_LEARNED = DRIFT_CHECK.replace("Before training, always run", "Before every training run, always run")
DRIFT_CHECK_MANUAL = DRIFT_CHECK.replace("a whole day of pod time", "a whole day of rented pod time")

SILENT_CRASH = (
    "When ComfyUI runs out of VRAM during a batch it sometimes exits without an error in the browser tab; the "
    "queue simply stops moving. Check the server log and the history endpoint before assuming the batch is "
    "still running, and restart the server with the low VRAM flag if the log shows an allocation failure."
)

OLD_RESTART = (
    "To restart ComfyUI, open a terminal on the pod, find the python process that serves port 8188 with "
    "`ps aux | grep main.py`, kill it, then start it again from /workspace/ComfyUI with `python main.py "
    "--listen 0.0.0.0 --port 8188` inside a tmux session so it survives closing the browser."
)

# Planted conflicting rules: each pairs with a rule stated elsewhere (see PLANTED_CONFLICTS).
ANSWER_FIRST = "Answer first; run the health check only when the task needs the pod."
HEALTH_EVERY_ANSWER = ("Always run the health check before every answer; a dead ComfyUI looked like a slow one "
                       "for a whole hour.")
RESIZE_IN_PLACE = "Resize the images in place before the backup so that the archive stays small."
SAVE_AT_END = "Save a checkpoint only at the end of a run; intermediate ones fill the volume."
SKIP_DRIFT_CHECK = ("Skip the dependency drift check when the pod starts from the pinned image; the image already "
                    "guarantees the versions.")

MISTAKES = [
    "Do not resize images in place; write resized copies next to the originals.",
    "Check that the caption count equals the image count before training.",
    "Never start training while ComfyUI holds the GPU; stop it first.",
    "Keep the trigger word lower case; the tokenizer splits capitals differently.",
    "Save a checkpoint every 250 steps; the pod can be preempted.",
    "Use the validation prompts file, not ad hoc prompts, to compare checkpoints.",
    "Delete nothing on the network volume without listing it first.",
    "Use the fp16-fix VAE for half precision or images come out black.",
    "Set a timeout on every ComfyUI API call; a hung socket blocks cron.",
    "Photos that differ only in size are still duplicates; hash the pixels.",
    "Write the workflow JSON to the volume before closing the pod.",
    "Bucket resolutions must be multiples of 64.",
    "Always note the seed next to a generated image.",
    "Rotate the SSH key when the pod changes.",
    "Do not mix captions from two captioners in one dataset.",
    "A learning rate above 1e-4 burned the face in every run so far.",
    "Check the free disk space before downloading a checkpoint.",
]


def claude_md(n_mistakes: int) -> str:
    """The always-loaded instructions file, with the first `n_mistakes` learned mistakes."""
    mistakes = "\n".join(f"- {m}" for m in MISTAKES[:n_mistakes])
    return f"""# Assistant instructions

Read this file before every session. It is loaded into the context of every task, so every line here
costs tokens on every request.

## Project

Pistachio trains an SDXL LoRA of one character on a rented GPU pod and generates images through ComfyUI
on port 8188. The current pod is pod-7f3a9c; its network volume is mounted at /workspace.

## Before training

{DRIFT_CHECK}

## Answer style

Answer with the exact command to run, one command per line, never a multi-line paste that depends on the
environment of the previous line. Say which machine a command runs on: the laptop or the pod.
{ANSWER_FIRST}

## Learned mistakes

{mistakes}
"""


LEARNINGS_MD = f"""# Session learnings

What working sessions taught us, newest last. Loaded at the start of every session.

## 2025-02-03: drift check

{DRIFT_CHECK_LEARNED}

## 2025-02-10: silent ComfyUI crashes

{SILENT_CRASH}

## 2025-02-13: pod health

{HEALTH_EVERY_ANSWER}

## 2025-02-12: caption length

Long captions listing every detail made the LoRA ignore the prompt at generation time. Captions of one or
two sentences that describe only what changes between images worked better in the second training run.
"""


WEEKS = [
    ("Week 9", "Collected 140 photos of the character; 31 were removed as duplicates or blurry. Captioned the "
               "remaining 109 with the trigger word pstch and a short description of pose, clothing and background."),
    ("Week 11", "First training run finished after 2,000 steps. The face is recognisable from step 1,250 on; later "
                "checkpoints overfit the hair colour and the studio lighting of the reference photos."),
    ("Week 13", "Split off a holdout set of twelve photos that never enter training, and wrote twelve validation "
                "prompts that put the character in scenes absent from the dataset."),
    ("Week 15", "Moved the ComfyUI workflows into the repository in API format after losing two of them with a "
                "terminated pod; they now load from the repository on every new machine."),
    ("Week 17", "Inpainting fixes hands reliably at a denoise strength around 0.55 with a mask grown by eight "
                "pixels; lower strengths keep the broken fingers, higher ones change the sleeve as well."),
    ("Week 20", "Second training run with the holdout set: checkpoint 1,500 wins the side-by-side comparison on "
                "eleven of twelve validation prompts. Batch generation through the API now resumes after a restart. "
                f"{SKIP_DRIFT_CHECK}"),
]


def progress_md(n_weeks: int) -> str:
    """Progress notes with the first `n_weeks` weekly entries, then the known issues."""
    weeks = "".join(f"## {title}\n\n{text}\n\n" for title, text in WEEKS[:n_weeks])
    return f"# Progress\n\n{weeks}## Known issues\n\n{SILENT_CRASH.replace('simply stops', 'just stops')}\n"


POD_CHECKLIST_MD = """# Pod checklist

## Pod id

[FILL IN]

## GPU type

[FILL IN: e.g. A100 80GB]

## Volume size

TODO

## SSH command

TODO: paste the ssh line here

## Ports

## Cost per hour

TBD
"""

OPERATIONS_MANUAL_MD = f"""# Operations manual

The complete procedure for running the character pipeline on a rented pod, from renting the machine to
shutting it down. Read the section you need; nothing here has to be loaded for every task.

## Renting the pod

Pick a template with CUDA 12 and at least 40 GB of GPU memory. Attach the network volume before the pod
starts: a volume attached later is mounted read-only until the next restart. Note the hourly price in the
spreadsheet so the monthly bill can be checked against the training log.

## Installing the training stack

Create the virtual environment on the network volume so it survives a pod change, then install the pinned
requirements. Download the base model once into /workspace/models:

```bash
python -m venv /workspace/venv
/workspace/venv/bin/pip install -r requirements-pinned.txt
huggingface-cli download stabilityai/sd_xl_base_0.9 --local-dir /workspace/models/sd_xl_base_0.9
```

## Before training

{DRIFT_CHECK_MANUAL}

## Starting ComfyUI

ComfyUI lives in /workspace/ComfyUI and serves its API and the browser interface on port 8188. Expose the
port in the pod settings, then open the proxied address; the first start takes a few minutes while custom
nodes install their own dependencies.

## Restarting ComfyUI

{OLD_RESTART}

## Backups

Copy the trained LoRA files, the captions and the workflow JSON from the network volume to the laptop at
the end of each day with rsync; the volume is billed separately and is deleted with the account.
{RESIZE_IN_PLACE}

## Disaster recovery

[FILL IN: what to do when the volume is lost]

## Shutting down

Stop the pod from the dashboard, never from inside the terminal, so that the volume is detached cleanly.
A stopped pod still costs storage; terminate it when the week's training is done.
"""

OLD_COMFYUI_MD = f"""# ComfyUI

## Restarting ComfyUI

{OLD_RESTART.replace("inside a tmux session", "in a tmux session")}

## ComfyUI logs

ComfyUI prints its log to the terminal it was started from; attach to the tmux session to read it, or
scroll back with the tmux copy mode when a batch failed overnight.
"""

NEW_COMFYUI_MD = """# ComfyUI

## Restarting ComfyUI

ComfyUI now runs under supervisord, which restarts it when it crashes. To restart it by hand run
`supervisorctl restart comfyui` and wait until `curl -s localhost:8188/system_stats` answers; never kill
the process directly or supervisord will count it as a crash loop and give up after three attempts.

## ComfyUI logs

supervisord writes the server output to /workspace/logs/comfyui.log and rotates it at 50 MB. Search it for
"out of memory" first when a batch stops; the browser tab does not show server-side failures.

## Custom nodes

Install custom nodes with their pinned commit from the nodes list in the repository, then restart through
supervisord. A node installed from its latest commit broke the inpainting workflow in April.
"""

OLD_POD_NOTES_MD = """# Pod notes 2024

## Choosing a GPU

An RTX A6000 with 48 GB trained the LoRA at batch size 2 in about ninety minutes. pod-7f3a9c in the
EU region was the cheapest machine with that card, at well under a dollar per hour.

## Network volume

The 100 GB volume of pod-7f3a9c holds the datasets, the checkpoints and the virtual environment. Keep at
least 20 GB free: the trainer writes optimizer state next to every saved checkpoint.
"""

NEW_POD_MD = f"""# Pod

## Choosing a GPU

An L40S with 48 GB now trains the LoRA at batch size 4 in about forty minutes and costs less per run than
the older cards, because the run is shorter. Pick the secure cloud so the machine cannot be reclaimed.

## Network volume

The 200 GB volume is attached to pod-b21e04 and holds datasets, checkpoints, the environment and the
ComfyUI models folder. Leave 30 GB free for optimizer state and the daily backup archive.
{SAVE_AT_END}

## SSH access

Connect with the key registered in the account settings; the command is shown on the pod's connect tab
and changes with every new pod, so copy it from there rather than from old notes.
"""

CAPTIONING_MD = """# Captioning guide

## Caption style

Start every caption with the trigger word pstch followed by the class word, then describe pose, clothing,
expression and background in plain words. Leave out what is true of every image, such as the hair colour,
so that it is learned as part of the character instead of as a promptable detail.

## Trigger word placement

The trigger word goes first so that it lands in the same token position in every caption; the model then
ties the identity to it rather than to whatever word happens to come first.

## Reviewing captions

Read twenty random captions side by side with their images after every captioning run. A caption that
names a detail the image does not show teaches the model to hallucinate it at generation time.
"""

# (ISO author date, commit message, {path: text}); dates are fixed so the history is reproducible.
COMMITS: list[tuple[str, str, dict[str, str]]] = [
    ("2025-01-10T12:00:00+00:00", "Start the knowledge base", {
        "CLAUDE.md": claude_md(3),
        "docs/operations_manual.md": OPERATIONS_MANUAL_MD,
        "docs/pod_notes_2024.md": OLD_POD_NOTES_MD,
        "kb/ComfyUI.md": OLD_COMFYUI_MD,
        "kb/pod_checklist.md": POD_CHECKLIST_MD,
    }),
    ("2025-02-14T12:00:00+00:00", "Add session learnings", {"CLAUDE.md": claude_md(6), "LEARNINGS.md": LEARNINGS_MD}),
    ("2025-03-20T12:00:00+00:00", "Add progress notes", {"CLAUDE.md": claude_md(10), "PROGRESS.md": progress_md(4)}),
    ("2025-05-02T12:00:00+00:00", "Rewrite the ComfyUI and pod notes for the new pod", {
        "CLAUDE.md": claude_md(13), "kb/comfyui.md": NEW_COMFYUI_MD, "kb/pod.md": NEW_POD_MD,
    }),
    ("2025-06-15T12:00:00+00:00", "Add the captioning guide", {
        "CLAUDE.md": claude_md(17), "PROGRESS.md": progress_md(6), "kb/captioning.md": CAPTIONING_MD,
    }),
]

# (file, text on one side) x (file, text on the other): every rule pair the conflict finder should list.
_DRIFT = [("CLAUDE.md", "Before training, always run"), ("LEARNINGS.md", "Before every training run, always run"),
          ("docs/operations_manual.md", "Before training, always run")]
PLANTED_CONFLICTS: list[tuple[tuple[str, str], tuple[str, str]]] = [
    (("CLAUDE.md", "Answer first;"), ("LEARNINGS.md", "Always run the health check")),
    (("CLAUDE.md", "Do not resize images in place"), ("docs/operations_manual.md", "Resize the images in place")),
    (("CLAUDE.md", "Save a checkpoint every 250 steps"), ("kb/pod.md", "Save a checkpoint only at the end")),
    *[(copy, ("PROGRESS.md", "Skip the dependency drift check")) for copy in _DRIFT],
]
