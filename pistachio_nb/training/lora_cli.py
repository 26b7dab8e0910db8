"""`pistachio lora resize | merge`: shrink a trained LoRA to a lower rank; merge one into an SDXL checkpoint file."""

from __future__ import annotations

import argparse

EXIT_OK = 0


def print_rows(rows: list[dict]) -> None:
    """A plain aligned table (no pandas: the CLI stays light)."""
    heads = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in heads]
    for line in [dict(zip(heads, heads))] + rows:
        print("  ".join(str(line[h]).ljust(w) for h, w in zip(heads, widths)).rstrip())


def cmd_resize(args: argparse.Namespace) -> int:
    """Resize, then print rank before/after and energy kept per part (unet, te1, te2) and overall."""
    from .lora_tools import resize_lora

    result = resize_lora(args.src, args.dest, args.rank, args.energy)
    print_rows(result.summary())
    print(f"wrote {result.path}: energy kept {result.energy:.4f} overall")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge, then print how many modules were merged per part (unet, te1, te2)."""
    from .lora_merge import merge_lora

    result = merge_lora(args.base, args.lora, args.dest, args.scale)
    print_rows(result.table())
    print(f"wrote {result.path}: {sum(result.merged.values())} modules merged at scale {args.scale}")
    return EXIT_OK


def add_commands(sub) -> None:
    """Register `lora resize` and `lora merge` on the `pistachio` parser's subparsers."""
    lora = sub.add_parser("lora", help="resize a kohya LoRA to a lower rank; merge a LoRA into an SDXL checkpoint")
    verbs = lora.add_subparsers(dest="lora_command", required=True)

    resize = verbs.add_parser("resize", help="lower a kohya lora/locon file's rank by SVD, keeping the most energy")
    resize.add_argument("src", help="the kohya LoRA .safetensors (e.g. outputs/<character>/lora/<name>.safetensors)")
    resize.add_argument("dest", help="the new .safetensors file (never the input)")
    resize.add_argument("--rank", type=int, required=True, help="the new rank (with --energy: the largest allowed)")
    resize.add_argument("--energy", type=float, default=None,
                        help="per module, the smallest rank keeping this share of sigma^2 (e.g. 0.9), at most --rank; "
                             "kohya's sv_fro F is energy F*F")
    resize.set_defaults(func=cmd_resize)

    merge = verbs.add_parser("merge", help="merge a kohya LoRA into a single-file SDXL checkpoint for ComfyUI")
    merge.add_argument("base", help="the single-file SDXL checkpoint (.safetensors, ComfyUI models/checkpoints)")
    merge.add_argument("lora", help="the kohya LoRA .safetensors")
    merge.add_argument("dest", help="the merged checkpoint to write (never an input)")
    merge.add_argument("--scale", type=float, default=1.0, help="the LoRA strength to bake in (default: 1.0)")
    merge.set_defaults(func=cmd_merge)
