"""`pistachio publish-lora`: 04_checkpoints' last step alone: publish the recommended LoRA into ComfyUI and verify it.

Reads the 04_checkpoints values of a params profile (same validation as the notebook); a profile with
`services:` (the demo) starts them for the command, as `run` does. Exit 1 when ComfyUI does not apply the LoRA.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack

EXIT_OK, EXIT_FAILED = 0, 1
NOTEBOOK = "04_checkpoints"


def profile_params(args: argparse.Namespace, notebook: str, stack: ExitStack):
    """The validated params of `notebook` from `--params` and `--set`, with the profile's services started on `stack`."""
    from ..paths import resolve
    from ..profiles import load_profile, parse_sets, resolve_values
    from ..runner import select_notebooks, start_services, workspace_lock

    nb, profile, sets = select_notebooks(notebook)[0], load_profile(resolve(args.params)), parse_sets(args.set)
    params = resolve_values(nb, profile, sets, check_paths=not profile.services)[1]
    if not profile.services:
        return params
    stack.enter_context(workspace_lock(params.ws.root))
    provided = start_services(profile.services, params.ws.root, stack)
    return resolve_values(nb, profile, sets, provided=provided)[1]


def cmd_publish_lora(args: argparse.Namespace) -> int:
    """Publish (content name + alias), list, verify; print the PASS / WARN / FAIL table."""
    from ..secrets import scrub
    from .publish import LoraPublishError, publish_lora

    with ExitStack() as stack:
        p = profile_params(args, NOTEBOOK, stack)
        if not p.comfy_url:
            print(f"comfy_url is empty in the {NOTEBOOK} values of {args.params}: nothing to publish to")
            return EXIT_FAILED
        try:
            done = publish_lora(p, lora=args.lora)
        except LoraPublishError as err:
            print(scrub(str(err)))
            return EXIT_FAILED
    print(scrub(done.table.to_string(index=False)))
    print(f"ComfyUI workflows can use {done.alias} (= {done.file}, sha256 {done.sha256[:12]}...)")
    return EXIT_OK


def add_commands(sub) -> None:
    """Register `publish-lora` on the `pistachio` parser's subparsers."""
    publish = sub.add_parser("publish-lora", help="copy the recommended LoRA into ComfyUI's models/loras and verify "
                                                  "ComfyUI applies it; exit 1 if it does not")
    publish.add_argument("--params", required=True, help="params profile, e.g. params/pod.yaml (its 04_checkpoints values)")
    publish.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one 04_checkpoints parameter")
    publish.add_argument("--lora", default=None, metavar="FILE",
                         help="publish this .safetensors instead of 04's recommendation")
    publish.set_defaults(func=cmd_publish_lora)
