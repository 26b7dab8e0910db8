"""`publish_lora`: the recommended checkpoint into ComfyUI's `models/loras/`, verified through ComfyUI itself.

Two names: `<trigger>-<sha256[:12]>.safetensors` says which content it is (a retrain never hides behind an old
name), and the alias `<trigger>.safetensors` is what workflows, 05 and 06 use. Both are written atomically (a
temp file renamed over the name, so ComfyUI never reads half a file), each with its params sidecar. The alias
moves only after the content file passed `verify_lora` (changes the picture at strength 1, no unapplied-key
line in ComfyUI's log), so a LoRA ComfyUI cannot apply never replaces a working one. Afterwards `/free`
drops ComfyUI's caches: its LoraLoader keeps a file's tensors by path, so a replaced alias would otherwise
be served from memory. `<workspace>/comparison/published.json` records what the alias holds (health reads it).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..downloads import sha256_file
from ..errors import PistachioError
from ..files import atomic_path, read_json, write_json, write_sidecar
from ..paths import resolve
from .bindings import bound_nodes
from .client import ComfyClient
from .lora_check import Verification, verify_lora
from .workflow import fill, load_workflow, workflow_bindings

PUBLISHED_FILE = "comparison/published.json"
VERIFY_WORKFLOW = "txt2img_lora"  # packaged template the check renders with (its bindings name the LoRA node)
VERIFY_TIMEOUT = 900.0  # seconds per verification image (a cold SDXL load on a pod takes a minute or two)


class LoraPublishError(PistachioError, RuntimeError):
    """The LoRA could not be published, or ComfyUI does not apply it."""


@dataclass
class Published:
    """What `publish_lora` did: the names in ComfyUI's loras folder, the content hash and the verification."""

    alias: str
    file: str
    sha256: str
    source: str
    verification: Verification | None = None
    rows: list[dict[str, str]] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """PASS / WARN / FAIL rows: copied, listed by ComfyUI, changes the picture, log of the load, alias."""
        return pd.DataFrame(self.rows, columns=["status", "check", "found"])


def content_name(trigger: str, sha256: str) -> str:
    """`<trigger>-<first 12 hex of sha256>.safetensors`: the name changes exactly when the content does."""
    return f"{trigger}-{sha256[:12]}.safetensors"


def alias_name(trigger: str) -> str:
    """The stable name workflows use: `<trigger>.safetensors`."""
    return f"{trigger}.safetensors"


def _copy(source: Path, dest: Path, sidecar: dict[str, Any], **extra: Any) -> None:
    """Atomically copy `source` to `dest` (a temp file renamed over it) and write its params sidecar."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
    write_sidecar(dest, sidecar.get("params", {}), **{k: v for k, v in sidecar.items() if k != "params"}, **extra)


def _source_sidecar(source: Path) -> dict[str, Any]:
    path = Path(f"{source}.params.json")
    return read_json(path) if path.is_file() else {}


def _listed(client: ComfyClient, name: str, models_dir: Path) -> dict[str, str]:
    listed = client.models("loras")
    if name not in listed:
        raise LoraPublishError(f"{client.url}/models/loras does not list {name} after it was written to {models_dir / 'loras'}",
                               fix="comfy_models_dir must be the models folder of that ComfyUI (see its extra_model_paths.yaml)")
    return {"status": "PASS", "check": "ComfyUI lists it", "found": f"{name} in /models/loras ({len(listed)} LoRAs)"}


def verification_graphs(p: Any, lora: str) -> tuple[Any, str]:
    """A function strength -> the packaged txt2img workflow filled for the check, and its LoRA node id."""
    template, bindings = load_workflow(VERIFY_WORKFLOW), workflow_bindings(VERIFY_WORKFLOW)
    values = dict(prompt=f"{p.trigger} {p.class_word}", negative=p.negative_prompt, seed=p.seeds[0], steps=p.steps,
                  cfg=p.guidance_scale, width=p.width, height=p.height, checkpoint=p.comfy_checkpoint, lora=lora,
                  filename_prefix=f"pistachio/verify-{Path(lora).stem}")
    return (lambda strength: fill(template, bindings, **values, lora_strength=strength)), bound_nodes(bindings, template, "lora")[0]


def publish_file(source: Path, trigger: str, models_dir: Path, client: ComfyClient, p: Any) -> Published:
    """Copy, list, verify, then move the alias; raise LoraPublishError (alias untouched) when ComfyUI cannot apply it."""
    sha = sha256_file(source)
    loras = models_dir / "loras"
    name, alias = content_name(trigger, sha), alias_name(trigger)
    meta = _source_sidecar(source)
    record = {"sha256": sha, "source": str(source), "content_name": name, "alias": alias}
    done = Published(alias, name, sha, str(source))
    if (loras / name).is_file() and sha256_file(loras / name) == sha:
        done.rows.append({"status": "PASS", "check": "content file", "found": f"{name} already there"})
    else:
        _copy(source, loras / name, meta, published=record)
        done.rows.append({"status": "PASS", "check": "content file", "found": f"copied {source.name} -> {loras / name}"})
    done.rows.append(_listed(client, name, models_dir))
    graph_at, node = verification_graphs(p, name)
    done.verification = verify_lora(client, graph_at, name, node, timeout=VERIFY_TIMEOUT)
    done.rows += done.verification.rows()
    if not done.verification.ok:
        raise LoraPublishError(f"ComfyUI at {client.url} does not apply {name} (from {source}); alias {alias} left as it was:\n"
                               + "\n".join(f"  {r['status']} {r['check']}: {r['found']}" for r in done.rows),
                               fix="a LoRA for another base model, or keys ComfyUI does not know: check the base model "
                                   "and the kohya export; the log lines above name the keys")
    _copy(loras / name, loras / alias, meta, published=record)
    done.rows.append(_listed(client, alias, models_dir) | {"check": "alias", "found": f"{alias} = {name}"})
    client.free(unload_models=False, free_memory=True)  # drop cached LoraLoader outputs of the old alias
    return done


def publish_lora(p: Any, lora: str | Path | None = None) -> Published | None:
    """Publish 04's recommended checkpoint (or `lora`) into ComfyUI and verify it there; None when comfy_url is empty."""
    if not p.comfy_url:
        return None
    from ..evaluation import read_recommendation

    source = resolve(lora) if lora else Path(read_recommendation(p.ws.root)["checkpoint"])
    if not source.is_file():
        raise LoraPublishError(f"LoRA file {source} does not exist", fix="run 04_checkpoints, or name an existing .safetensors")
    models_dir = resolve(p.comfy_models_dir)
    if not models_dir.is_dir():
        raise LoraPublishError(f"comfy_models_dir {models_dir} is not a folder",
                               fix="set comfy_models_dir to your ComfyUI's models folder (e.g. /workspace/ComfyUI/models)")
    (models_dir / "loras").mkdir(exist_ok=True)  # ComfyUI ships it; a fresh install's lists nothing until it exists
    with ComfyClient(p.comfy_url, use_websocket=False) as client:
        done = publish_file(source, p.trigger, models_dir, client, p)
    write_json(p.ws.root / PUBLISHED_FILE, {"alias": done.alias, "file": done.file, "sha256": done.sha256,
                                            "source": done.source, "comfy_url": p.comfy_url,
                                            "strength_checked": done.verification.strength,
                                            "difference": round(done.verification.difference, 3),
                                            "log_source": done.verification.log_source})
    write_sidecar(p.ws.root / PUBLISHED_FILE, p)
    return done


def read_published(workspace: Path) -> dict[str, Any] | None:
    """What the last `publish_lora` put under the alias (`alias`, `file`, `sha256`, ...), or None before any."""
    path = Path(workspace) / PUBLISHED_FILE
    return read_json(path) if path.is_file() else None


def published_content(workspace: Path) -> dict[str, str]:
    """LoRA name in ComfyUI -> sha256 of its content, for the names the last publish wrote (empty before any)."""
    record = read_published(workspace)
    return {record["alias"]: record["sha256"], record["file"]: record["sha256"]} if record else {}
