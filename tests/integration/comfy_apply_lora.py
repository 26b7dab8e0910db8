"""Run by ComfyUI's own python (not the project venv): ComfyUI's weight patching on a kohya file's modules.

    <comfy venv python> comfy_apply_lora.py <ComfyUI source> <lora.safetensors> <base.safetensors> <out.safetensors>

`base` holds each kohya module's frozen weight under the module's name. Writes the weight ComfyUI's
`load_lora` + `calculate_weight` make of it at strength 1 (what a LoraLoader node applies), and prints JSON.
"""

import json
import sys

sys.path.insert(0, sys.argv[1])
import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True  # as `main.py --cpu`: no CUDA probing
import comfy.lora  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402


def main():
    lora, base = load_file(sys.argv[2]), load_file(sys.argv[3])
    patches = comfy.lora.load_lora(lora, {m: m for m in base})
    out = {m: comfy.lora.calculate_weight([(1.0, patches[m], 1.0, None, None)], base[m].clone().float(), m).contiguous()
           for m in patches}
    save_file(out, sys.argv[4])
    print(json.dumps({"modules": len(base), "patched": len(patches), "adapters": sorted({type(p).__name__ for p in patches.values()})}))


main()
