"""`pistachio publish-lora`: 04_checkpoints' last step alone: publish the recommended LoRA into ComfyUI and verify it.

Reads the 04_checkpoints values of a params profile (same validation as the notebook); a profile with
`services:` (the demo) starts them for the command, as `run` does. Exit 1 when ComfyUI does not apply the LoRA.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack

EXIT_OK, EXIT_FAILED = 0, 1
NOTEBOOK = "04_checkpoints"


def cmd_publish_lora(args: argparse.Namespace) -> int:
    """Publish (content name + alias), list, verify; print the PASS / WARN / FAIL table."""
    from ..runner import notebook_params
    from ..secrets import scrub
    from .publish import LoraPublishError, publish_lora

    with ExitStack() as stack:
        p = notebook_params(args.params, args.set, NOTEBOOK, stack)[0]
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
