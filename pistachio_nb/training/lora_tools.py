"""Resize a trained kohya LoRA to a lower rank by SVD of each module's update, reporting the energy kept.

The update of a module is dW = up @ down * alpha / rank (convs flattened to out x in*kh*kw). Its best rank-k
approximation keeps the top k singular values (Eckart-Young); the share of energy kept is sum of kept sigma^2
over all sigma^2, the "fro retained" figure kohya's networks/resize_lora.py prints (squared). Written here as
plain torch; kohya's script is the reference for the idea, not the code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputDataError
from ..files import atomic_path

SUPPORTED = ("lora", "locon")  # kohya lora_down / lora_up modules on linears (lora) and convs (locon)
KOHYA_MODULE = re.compile(r"(lora_(?:unet|te1|te2|te)_\w+)\.(lora_down\.weight|lora_up\.weight|alpha)")
OTHER_TYPES = {".dora_scale": "DoRA", ".hada_w1_a": "LoHa", ".lokr_w1": "LoKr"}  # key endings of the unsupported kinds


@dataclass
class Module:
    """One kohya LoRA module: its down and up factors (float32) and alpha."""

    down: torch.Tensor
    up: torch.Tensor
    alpha: float

    @property
    def rank(self) -> int:
        return self.down.shape[0]

    def delta(self) -> torch.Tensor:
        """dW = up @ down * alpha / rank, flattened to 2-D (out x in*kh*kw for convs)."""
        return (self.up.flatten(1) @ self.down.flatten(1)) * (self.alpha / self.rank)


@dataclass
class KohyaLora:
    """A kohya LoRA file read into modules, with its metadata and tensor dtype."""

    path: Path
    modules: dict[str, Module]
    metadata: dict[str, str]
    dtype: torch.dtype

    @property
    def rank(self) -> int:
        return max(m.rank for m in self.modules.values())


def read_kohya(path: str | Path) -> KohyaLora:
    """Read a kohya lora/locon file; refuse DoRA/LoHa/LoKr and anything that is not a kohya LoRA, naming the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"LoRA file {path} does not exist", fix="give the .safetensors file 03_training wrote under <workspace>/lora/")
    try:
        with safe_open(str(path), "pt") as f:
            metadata, tensors = f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise InputDataError(f"{path} is not a readable .safetensors file: {err}", fix="give a kohya LoRA .safetensors file") from err
    kinds = {name for end, name in OTHER_TYPES.items() if any(k.endswith(end) for k in tensors)}
    if kinds:
        raise InputDataError(f"{path} is a {'/'.join(sorted(kinds))} file; only {' and '.join(SUPPORTED)} LoRAs are supported",
                             fix="resize or merge a file trained with network_type lora or locon")  # fmt: skip
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = KOHYA_MODULE.fullmatch(key)
        if match:
            parts.setdefault(match[1], {})[match[2]] = tensor
    modules = {n: _module(p) for n, p in parts.items() if "lora_down.weight" in p and "lora_up.weight" in p}
    if not modules:
        raise InputDataError(f"{path} is not a kohya LoRA (no lora_unet_/lora_te*_ ... .lora_down.weight keys)",
                             fix="give a kohya LoRA (03_training's <name>.safetensors), not a checkpoint or diffusers file")  # fmt: skip
    return KohyaLora(path, modules, metadata, parts[next(iter(modules))]["lora_down.weight"].dtype)


def _module(parts: dict[str, torch.Tensor]) -> Module:
    down, up = parts["lora_down.weight"].float(), parts["lora_up.weight"].float()
    alpha = float(parts["alpha"]) if "alpha" in parts else float(down.shape[0])  # kohya: no alpha means alpha = rank
    return Module(down, up, alpha)


@dataclass
class ResizedModule:
    """One module after resizing: the new factors, the ranks before and after and the share of energy kept."""

    module: Module
    rank_before: int
    kept: float  # sum of the kept sigma^2
    total: float  # sum of all sigma^2

    @property
    def energy(self) -> float:
        return self.kept / self.total if self.total else 1.0


def kept_rank(sigma: torch.Tensor, rank: int, energy: float | None) -> int:
    """`rank`, or with `energy` the smallest rank whose sigma^2 share reaches it (kohya's sv_fro), capped at `rank`."""
    if energy is None:
        return min(rank, len(sigma))
    share = torch.cumsum(sigma**2, 0) / (sigma**2).sum().clamp_min(torch.finfo(sigma.dtype).tiny)
    return min(rank, int((share < energy - 1e-7).sum()) + 1, len(sigma))


def low_rank_svd(module: Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SVD of dW = up @ down * alpha / rank through QR of each factor: an r x r SVD instead of out x in (exact)."""
    q_up, r_up = torch.linalg.qr(module.up.flatten(1).double())
    q_down, r_down = torch.linalg.qr(module.down.flatten(1).double().T)
    u, sigma, vh = torch.linalg.svd(r_up @ r_down.T * (module.alpha / module.rank))
    return q_up @ u, sigma, vh @ q_down.T


def resize_module(module: Module, rank: int, energy: float | None = None) -> ResizedModule:
    """Truncated SVD of the module's dW, split as sqrt(sigma) into up and down, with alpha = the new rank (scale 1)."""
    u, sigma, vh = low_rank_svd(module)
    k = kept_rank(sigma, rank, energy)
    root = sigma[:k].sqrt()
    up = (u[:, :k] * root).float().reshape(module.up.shape[0], k, *[1] * (module.up.dim() - 2))
    down = (root[:, None] * vh[:k]).float().reshape(k, *module.down.shape[1:])
    return ResizedModule(Module(down, up, float(k)), module.rank, float((sigma[:k] ** 2).sum()), float((sigma**2).sum()))


def energy_kept(results: Iterable[ResizedModule]) -> float:
    """Kept over total sigma^2, summed over modules: the whole LoRA's share of energy kept."""
    results = list(results)
    total = sum(r.total for r in results)
    return sum(r.kept for r in results) / total if total else 1.0


@dataclass
class ResizeResult:
    """What `resize_lora` wrote: the file, each module's result, and the overall energy kept."""

    path: Path
    modules: dict[str, ResizedModule]

    @property
    def energy(self) -> float:
        """The share of all modules' energy kept (each module weighted by its own sum of sigma^2)."""
        return energy_kept(self.modules.values())

    def summary(self) -> list[dict]:
        """One row per part (unet, te1, te2): modules, ranks before and after, energy kept overall and at worst."""
        parts: dict[str, list[ResizedModule]] = {}
        for name, r in self.modules.items():
            parts.setdefault(name.split("_")[1], []).append(r)
        return [{"part": part, "modules": len(rs), "rank_before": _span(r.rank_before for r in rs),
                 "rank_after": _span(r.module.rank for r in rs), "energy": round(energy_kept(rs), 4),
                 "lowest_energy": round(min(r.energy for r in rs), 4)} for part, rs in parts.items()]  # fmt: skip


def _span(values) -> str:
    values = sorted(set(values))
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def resize_lora(src: str | Path, dest: str | Path, rank: int, energy: float | None = None) -> ResizeResult:
    """Write `src` resized to `rank` (with `energy`: the smallest rank per module keeping that share, at most `rank`)."""
    src, dest = Path(src), Path(dest)
    lora = read_kohya(src)
    if rank < 1 or rank >= lora.rank:
        raise InputDataError(f"rank {rank} is not below the rank of {src} ({lora.rank})",
                             fix=f"give --rank between 1 and {lora.rank - 1}")  # fmt: skip
    if energy is not None and not 0 < energy <= 1:
        raise InputDataError(f"energy {energy} for {src} is not a share in (0, 1]", fix="give e.g. --energy 0.9")
    refuse_overwrite(dest, src)
    from tqdm.auto import tqdm

    modules = {name: resize_module(m, rank, energy) for name, m in tqdm(lora.modules.items(), desc="resize", unit="module")}
    result = ResizeResult(dest, modules)
    new_rank = max(r.module.rank for r in modules.values())
    note = {"from": src.name, "from_rank": lora.rank, "rank": rank, "energy_target": energy, "energy_kept": round(result.energy, 6)}
    metadata = {**lora.metadata, "ss_network_dim": str(new_rank), "ss_network_alpha": str(new_rank),
                "pistachio_resize": json.dumps(note)}  # fmt: skip
    save_modules(dest, {n: r.module for n, r in modules.items()}, lora.dtype, metadata)
    return result


def refuse_overwrite(dest: Path, *inputs: Path) -> None:
    """Refuse an output path that exists: one of the inputs, or any other file of the user's (nothing is overwritten)."""
    if any(dest.resolve() == src.resolve() for src in inputs):
        raise InputDataError(f"output {dest} is the input file", fix="give a new output path: inputs are never overwritten")
    if dest.exists():
        raise InputDataError(f"output {dest} already exists", fix="give a new output path, or move that file away first")


def save_modules(dest: Path, modules: dict[str, Module], dtype: torch.dtype, metadata: dict[str, str]) -> Path:
    """Write modules as a kohya file (lora_down / lora_up / alpha per module) atomically."""
    from safetensors.torch import save_file

    tensors = {}
    for name, m in modules.items():
        tensors[f"{name}.lora_down.weight"] = m.down.to(dtype).contiguous()
        tensors[f"{name}.lora_up.weight"] = m.up.to(dtype).contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(m.alpha, dtype=dtype)
    with atomic_path(dest) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return dest
