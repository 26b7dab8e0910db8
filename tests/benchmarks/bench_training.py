"""Seconds per optimizer step of `train_lora`'s loop on the tiny SDXL (64 px, batch 1, one thread), with and
without cached latents, against a minimal plain diffusers + peft loop on the same model, as ratios.

Per-step cost is CPU time of this process (torch runs in the calling thread with one thread), not wall
time: the machine is shared, and wall time there measures the neighbours. Ours = CPU time of
`run_loop` for N steps / N, with the checkpoint writer stubbed out (loading and caching happen before;
logging and progress bars count); plain = CPU time of its N-step loop / N. Best of interleaved rounds
(other processes only ever add time, as in `timeit`). Targets (issue 6): ours within 10% of the
plain loop, and cached latents at least 1.25x faster per step than encoding every step.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pistachio_nb.training.data import load_dataset  # noqa: E402
from pistachio_nb.training.logs import TrainLog  # noqa: E402
from pistachio_nb.training import loop  # noqa: E402
from pistachio_nb.training.loop import resume_or_start, run_loop, setup_run  # noqa: E402
from tests.training_data import training_params, write_tiny_dataset  # noqa: E402

N = int(os.environ.get("BENCH_STEPS", "40"))
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
torch.set_num_threads(1)


def ours(steps: int, cached: bool) -> float:
    """CPU seconds per step of `train_lora`'s loop (steps, logging, progress bar; no checkpoint files)."""
    with tempfile.TemporaryDirectory() as ws:
        write_tiny_dataset(Path(ws) / "dataset", n_train=4, n_val=0, repeats=1)
        p = training_params(ws, max_steps=steps, checkpoint_every=10**6, validation_every=10**6, target_modules=TARGETS,
                            cache_latents=cached, cache_text_embeddings=cached, min_snr_gamma=0.0, noise_offset=0.0,
                            max_grad_norm=0.0)  # fmt: skip
        run = setup_run(p, load_dataset(p.ws.dataset, p.resolution), p.ws.lora)
        progress = resume_or_start(run, None)
        run.featurizer.warm(run.data.train)
        log = TrainLog(p.ws.lora, 0)
        t0 = time.process_time()
        run_loop(run, progress, log)
        seconds = time.process_time() - t0
        log.close()
        return seconds / steps


def plain(steps: int, cached: bool) -> float:
    """CPU seconds per step of the textbook loop: diffusers pipeline parts + peft adapter + AdamW."""
    from diffusers import DDPMScheduler, StableDiffusionXLPipeline
    from peft import LoraConfig

    from pistachio_nb.models import resolve_model

    pipe = StableDiffusionXLPipeline.from_pretrained(resolve_model("tiny:sdxl"))
    for m in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        m.requires_grad_(False)
    torch.manual_seed(0)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=2, init_lora_weights="gaussian", target_modules=TARGETS))
    opt = torch.optim.AdamW([p for p in pipe.unet.parameters() if p.requires_grad], lr=1e-3)
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    pixels = torch.rand(4, 1, 3, 64, 64) * 2 - 1
    prompts = ["ohwx woman, red dress", "ohwx woman, smiling", "ohwx woman, black hair", "ohwx woman, portrait"]
    time_ids = torch.tensor([[128, 128, 0, 0, 64, 64]], dtype=torch.float32)

    def encode(i: int):
        with torch.no_grad():
            latents = pipe.vae.encode(pixels[i]).latent_dist.mean * pipe.vae.config.scaling_factor
            emb, _, pooled, _ = pipe.encode_prompt(prompts[i], do_classifier_free_guidance=False)
        return latents, emb, pooled

    cache = [encode(i) for i in range(4)] if cached else None
    for step in range(3):  # warm-up: first-call allocations
        encode(step)
    t0 = time.process_time()
    for step in range(steps):
        latents, emb, pooled = cache[step % 4] if cached else encode(step % 4)
        noise = torch.randn_like(latents)
        t = torch.randint(0, 1000, (1,))
        pred = pipe.unet(sched.add_noise(latents, noise, t), t, emb,
                         added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample  # fmt: skip
        loss = F.mse_loss(pred, noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
    return (time.process_time() - t0) / steps


ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def main() -> None:
    loop._checkpoint = lambda *args: {"step": 0}  # the final checkpoint's files are not per-step cost
    loop.append_jsonl = lambda *args: None
    configs = [("ours", lambda cached: ours(N, cached)), ("plain", lambda cached: plain(N, cached))]
    samples: dict[tuple[str, bool], list[float]] = {(name, c): [] for name, _ in configs for c in (True, False)}
    for _ in range(ROUNDS):  # interleaved, so slow phases of the machine hit every config alike
        for name, fn in configs:
            for cached in (True, False):
                samples[name, cached].append(fn(cached))
    results = {key: min(values) for key, values in samples.items()}
    for (name, cached), seconds in results.items():
        print(f"{name:5s} {'cached  ' if cached else 'uncached'} {seconds:.4f} s/step")
    for cached in (True, False):
        label = "cached" if cached else "uncached"
        print(f"ours / plain ({label}): {results['ours', cached] / results['plain', cached]:.3f}  (target <= 1.10)")
    for name in ("ours", "plain"):
        print(f"{name}: uncached / cached speed-up {results[name, False] / results[name, True]:.2f}x  (target >= 1.25)")


if __name__ == "__main__":
    main()
