"""The training loop — one function, `train`, explicit from top to bottom.

Runs unchanged in one process or under ``accelerate launch`` / ``torchrun`` (DDP; FSDP and DeepSpeed through
accelerate's config files). Steps:

1. accelerator (mixed precision, gradient accumulation), seed, model + freezing policy (+ LoRA adapters on the
   LLM's linear layers, `mmlink.train.lora`), data;
2. AdamW (decay on matrices only; the projector at ``projector_lr`` when set) + linear warm-up / cosine decay,
   ``accelerator.prepare(model, optimizer, scheduler)``;
3. resume: trainable weights (and LoRA adapter), optimizer, scheduler, RNG states and data position from the newest
   checkpoint;
4. loop over optimizer steps: read ``grad_accum`` micro-batches, count the target tokens of the whole global step
   (all micro-batches, all processes), then per micro-batch ``accumulate`` → forward → summed token loss /
   global token count → ``backward``; clip; ``optimizer.step``; ``scheduler.step``; log; validate; sample; save;
5. final trainable-only model in ``out_dir/final`` and ``train_summary.json``.

Loss normalisation: the gradient of one optimizer step is ``Σ token-gradients / N`` with ``N`` the number of
target tokens in the global batch, so 2 processes × batch b equal 1 process × batch 2b (and grad accumulation
equals a bigger batch). Data order: `ShardedBatchSampler` (a seeded permutation per epoch); the data position
is ``step × grad_accum`` micro-batches, so a resumed run reads exactly the batches an uninterrupted one would.

Checkpoints (``out_dir/checkpoints/step-XXXXXX/``): ``trainable.safetensors`` + ``mmlink_delta.json`` (the
trainable-only format `mmlink.models.load` reads), ``optimizer.pt``, ``scheduler.pt``, ``rng_rank{r}.pt``
(written by us, read with ``weights_only=True``) and ``trainer_state.json``; written to ``.tmp-step-XXXXXX`` and
renamed, so a directory named ``step-*`` is always complete; the newest ``keep_last`` are kept. With ``lora``, the
adapter weights are not in ``trainable.safetensors`` but in a PEFT adapter directory ``adapter/`` beside it (named by
``mmlink_delta.json``; ``peft.PeftModel.from_pretrained`` opens it), in checkpoints and in ``final/`` alike.

``resume`` on a finished run (``train_summary.json`` at ``max_steps`` or beyond) trains nothing; a larger
``max_steps`` extends the run from its newest checkpoint, the cosine schedule stretched to the new end. A run that
fails (or is interrupted) before its first optimizer step removes the ``out_dir`` it created.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from safetensors.torch import load_file
from transformers import get_cosine_schedule_with_warmup

from mmlink.fileio import atomic_write
from mmlink.runtime import choose_mixed_precision
from mmlink.train.config import TrainConfig
from mmlink.train.data import ConversationCollator, ConversationDataset, ShardedBatchSampler, count_targets
from mmlink.train.lora import (ADAPTER_DIR, add_lora, adapted_modules, export_merged, is_lora, load_adapter,
                               save_adapter, split_lora)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
SUMMARY_FILE = "train_summary.json"
SUMMARY_KEYS = (
    "steps", "epochs", "samples_seen", "tokens_seen", "time_s", "samples_per_s", "global_batch_size",
    "num_processes", "grad_accum", "mixed_precision", "mixed_precision_choice", "trainable_params", "total_params",
    "trainable_fraction", "lora_modules", "initial_train_loss", "final_train_loss", "final_val_loss",
    "resumed_from_step", "final_dir", "config",
)


def train(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run (or with ``resume`` continue) a training run; returns the summary written to ``train_summary.json``.

    With ``resume`` on a run that already finished at ``config.max_steps`` (or beyond) nothing is trained: the
    stored summary comes back with ``"already_finished": True``."""
    out_dir = Path(config.out_dir)
    if resume:
        finished = finished_summary(out_dir, config)
        if finished is not None:
            return {**finished, "already_finished": True}
    config.check_inputs()  # before out_dir exists: a typo in a data path leaves nothing behind
    created = not out_dir.exists() and int(os.environ.get("RANK", "0")) == 0
    live = _Live()
    try:
        return _train(config, resume, live)
    except BaseException:
        # Close what the run opened so that its logs reach the disk (Ctrl-C included), then drop an out_dir that
        # holds nothing of value: created by this run, no optimizer step done.
        if live.progress is not None:
            live.progress.close()
        if live.writer is not None:
            live.writer.close()
        if created and live.steps == 0:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


class _Live:
    """What a running `_train` has opened and done, for `train` to clean up after a failure."""

    def __init__(self) -> None:
        self.writer = self.progress = None
        self.steps = 0  # optimizer steps done by this run (not counting a resumed run's earlier ones)


def finished_summary(out_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The summary of a run in ``out_dir`` that already reached ``config.max_steps``; None when there is more to
    train. A finished run without checkpoints cannot be extended (resuming would start it over)."""
    path = out_dir / SUMMARY_FILE
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    check_same_trajectory(summary.get("config", {}), config)  # "finished" only for the run that was asked for
    if summary.get("steps", 0) >= config.max_steps:
        return summary
    if latest_checkpoint(out_dir) is None:
        raise ValueError(f"cannot extend {out_dir} to max_steps {config.max_steps}: the run finished at "
                         f"{summary.get('steps')} steps but kept no checkpoint to continue from (save_every "
                         f"{summary.get('config', {}).get('save_every')}); train in a new out_dir instead")
    return None


def _train(config: TrainConfig, resume: bool, live: _Live) -> dict[str, Any]:
    from mmlink.models import load

    out_dir = Path(config.out_dir)
    ckpt_root = out_dir / CHECKPOINTS

    # ---------------------------------------------------------------- 1. accelerator, seed, model, data
    # torchrun on a machine without GPUs: tell accelerate to use CPU processes (gloo); `accelerate launch --cpu`
    # says so through ACCELERATE_USE_CPU.
    cpu_processes = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    precision = choose_mixed_precision(config.mixed_precision, _train_device())
    accelerator = Accelerator(
        cpu=cpu_processes,
        mixed_precision=precision.mixed_precision,
        gradient_accumulation_steps=config.grad_accum,
        step_scheduler_with_optimizer=False,  # we step the scheduler once per optimizer step, explicitly
        log_with=list(config.trackers) or None,
        project_dir=str(out_dir) if config.trackers else None,
    )
    if config.trackers:  # wandb & co. (the TensorBoard log below is written either way)
        accelerator.init_trackers(Path(out_dir).name, config={k: str(v) for k, v in config.to_dict().items()})
    is_main, world, rank = accelerator.is_main_process, accelerator.num_processes, accelerator.process_index
    set_seed(config.seed)

    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for leftover in ckpt_root.glob(".tmp-*"):  # an interrupted checkpoint write: never a valid checkpoint
            shutil.rmtree(leftover, ignore_errors=True)
    latest = latest_checkpoint(out_dir)
    if latest is not None and not resume:
        raise ValueError(f"{out_dir} already holds checkpoints (newest {latest.name}); pass --resume to continue "
                         "the run or choose another out_dir")
    accelerator.wait_for_everyone()

    model, processor = load(config.model, **config.model_kwargs())
    base = config.model if not Path(config.model).exists() else str(Path(config.model).resolve())
    model.float()  # master weights in fp32; autocast handles bf16/fp16
    # The policy's "projection" is this model's projector (Q-Former: language_projection., LLaVA: its MLP).
    prefixes = config.trainable_prefixes_for(model.projector_prefix)
    n_trainable, n_total = model.set_trainable(prefixes)
    # LoRA: peft adapters on the LLM's linear layers only (an explicit module list, never the vision tower); the
    # policy's parameters keep training fully beside them. `model` stays the mmlink model (adapters injected in
    # place); `peft_model` is peft's wrapper around it, used to write adapter directories peft can open.
    peft_model = add_lora(model, config.lora) if config.lora is not None else None
    if peft_model is not None:
        n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_total = sum(p.numel() for p in model.parameters())
    if n_trainable == 0:
        raise ValueError(f"trainable={config.trainable!r} matches no parameter of {config.model!r}")
    trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]
    lora_modules = adapted_modules(model)
    decoder_only = model.config.use_decoder_only_language_model

    train_set = ConversationDataset(config.train_data, config.image_root)
    if config.train_limit is not None:
        train_set.records = train_set.records[: config.train_limit]
    val_set = ConversationDataset(config.val_data, config.image_root) if config.val_data else None
    collate = ConversationCollator(processor)
    gen_collate = ConversationCollator(processor, for_generation=True)

    # ---------------------------------------------------------------- 2. optimizer, schedule, prepare
    optimizer = torch.optim.AdamW(optimizer_groups(model, config), lr=config.lr, betas=config.betas, eps=config.eps)
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.schedule_warmup_steps, config.max_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    set_train_mode(model, config.frozen_eval)

    # ---------------------------------------------------------------- 3. resume
    step, resumed_from = 0, None
    if resume and latest is not None:
        state = json.loads((latest / STATE_FILE).read_text())
        check_resumable(state, config, world)
        old_max = state.get("config", {}).get("max_steps", config.max_steps)
        weights = load_file(latest / "trainable.safetensors")
        if peft_model is not None:  # the LoRA weights are in the checkpoint's adapter directory
            load_adapter(peft_model, latest / ADAPTER_DIR)
        own_names = [n for n in trainable_names if peft_model is None or not is_lora(n)]
        missing = sorted(set(own_names) - set(weights))
        if missing:
            raise ValueError(f"{latest}: checkpoint lacks trainable parameters {missing[:5]}")
        with torch.no_grad():
            params = dict(accelerator.unwrap_model(model).named_parameters())
            for name in own_names:
                params[name].copy_(weights[name])
        optimizer.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(latest / "scheduler.pt", weights_only=True))
        rng_file = latest / f"rng_rank{rank}.pt"
        if rng_file.exists():
            set_rng_state(torch.load(rng_file, weights_only=True))
        step = resumed_from = state["step"]
        accelerator.print(f"resumed from {latest} (step {step})")
        if old_max != config.max_steps:
            if config.max_steps < step:
                raise ValueError(f"cannot resume: max_steps {config.max_steps} is below the checkpoint's step {step}")
            restart_schedule_here(optimizer, scheduler)
            old_warmup = dataclasses.replace(config, max_steps=old_max).schedule_warmup_steps
            warmup = ("" if old_warmup == config.schedule_warmup_steps else
                      f", warm-up {old_warmup} → {config.schedule_warmup_steps} steps")
            accelerator.print(f"note: max_steps {old_max} → {config.max_steps}: the learning-rate schedule changes "
                              f"(cosine decay now reaches 0 at step {config.max_steps}{warmup}); from step {step} on "
                              "this run differs from one trained with either max_steps from the start")
    elif resume:
        accelerator.print(f"--resume: no checkpoint in {ckpt_root}, starting from scratch")

    # The data position: micro-batches consumed so far (the same for every process).
    sampler = ShardedBatchSampler(len(train_set), config.batch_size, world, rank, config.seed,
                                  start=step * config.grad_accum)
    # The loader's own generator: making an iterator draws a seed, and from the global RNG that draw would come after
    # the restored RNG state on resume but before step 1 in a fresh run, shifting every dropout mask (LoRA dropout, a
    # trained Q-Former's) — resume would not be exact.
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=config.num_workers,
                                         generator=torch.Generator().manual_seed(config.seed))
    batches = iter(loader)

    writer = None
    if is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = live.writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"), purge_step=step or None)
        writer.add_text("config", "```\n" + json.dumps(config.to_dict(), indent=2) + "\n```", step)
        accelerator.print(f"trainable parameters: {n_trainable:,} of {n_total:,} ({100 * n_trainable / n_total:.4f}%)"
                          f" — policy {config.trainable!r}, {world} process(es), global batch "
                          f"{config.batch_size * world * config.grad_accum}")
        accelerator.print(f"autocast: {precision.mixed_precision} ({precision.reason})")
        if peft_model is not None:
            accelerator.print(f"LoRA r={config.lora.r} alpha={config.lora.alpha:g} on {len(lora_modules)} linear "
                              f"layers under {accelerator.unwrap_model(model).language_model_prefix!r}")
    progress = None
    if is_main and config.progress:
        from tqdm.auto import tqdm

        progress = live.progress = tqdm(total=config.max_steps, initial=step, desc="train", dynamic_ncols=True)

    # ---------------------------------------------------------------- 4. the loop
    global_batch = config.batch_size * world * config.grad_accum
    start_time, start_step = time.perf_counter(), step
    initial_loss = final_loss = val_loss = None
    tokens_seen = 0
    while step < config.max_steps:
        # Read the whole accumulation window first: the loss is normalised by its global target-token count.
        micro = [next(batches) for _ in range(config.grad_accum)]
        local_tokens = sum(count_targets(b["labels"], decoder_only) for b in micro)
        n_tokens = accelerator.reduce(torch.tensor(local_tokens, device=accelerator.device), "sum").item()
        if n_tokens == 0:
            raise ValueError(f"step {step + 1}: the global batch has no target tokens")
        # Scale so that accelerate's division by grad_accum and DDP's mean over processes give Σ/N.
        scale = world * config.grad_accum / n_tokens
        step_loss_sum = torch.zeros((), device=accelerator.device)
        for batch in micro:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            # gradients add up over the window; DDP all-reduces them on its last micro-batch only
            with accelerator.accumulate(model):
                loss_sum = token_loss_sum(model, batch, decoder_only)
                accelerator.backward(loss_sum * scale)
                step_loss_sum += loss_sum.detach()
        # one optimizer step per window of grad_accum micro-batches
        if config.max_grad_norm > 0:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lrs = scheduler.get_last_lr()  # this step's rates: [lr, lr, projector_lr, projector_lr] with projector_lr
        lr = lrs[0]
        scheduler.step()
        step += 1
        live.steps += 1
        tokens_seen += n_tokens
        final_loss = accelerator.reduce(step_loss_sum, "sum").item() / n_tokens
        initial_loss = final_loss if initial_loss is None else initial_loss

        elapsed = time.perf_counter() - start_time
        samples_per_s = (step - start_step) * global_batch / max(elapsed, 1e-9)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{final_loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{samples_per_s:.1f}")
        if writer is not None and (config.log_every and step % config.log_every == 0 or step == 1):
            scalars = {"train/loss": final_loss, "train/lr": lr, "train/samples_per_s": samples_per_s}
            if config.projector_lr is not None:
                scalars["train/projector_lr"] = lrs[2]
            if config.max_grad_norm > 0:
                scalars["train/grad_norm"] = float(grad_norm)
            for name, value in scalars.items():
                writer.add_scalar(name, value, step)
            accelerator.log(scalars, step=step)  # the extra trackers (a no-op without)

        # Validation loss (all processes, sharded) and generation samples (main process).
        if val_set is not None and config.eval_every and (step % config.eval_every == 0 or step == config.max_steps):
            val_loss = evaluate(accelerator, model, val_set, collate, config, decoder_only)
            accelerator.print(f"step {step}: val loss {val_loss:.4f}")
            if writer is not None:
                writer.add_scalar("val/loss", val_loss, step)
                accelerator.log({"val/loss": val_loss}, step=step)
        if config.sample_every and (step % config.sample_every == 0 or step == config.max_steps):
            samples = generate_samples(accelerator, model, val_set or train_set, gen_collate, processor, config)
            if writer is not None:
                writer.add_text("samples", "\n\n".join(f"**{s['id']}**: {s['prediction']}  \n_ref_: "
                                                       f"{s['reference']}" for s in samples), step)
                with open(out_dir / "samples.jsonl", "a") as fh:
                    for s in samples:
                        fh.write(json.dumps({"step": step, **s}) + "\n")
            set_train_mode(model, config.frozen_eval)

        # Checkpoint: trainable weights + optimizer/scheduler/RNG + data position, atomically.
        if config.save_every and step % config.save_every == 0 and step < config.max_steps:
            save_checkpoint(accelerator, model, optimizer, scheduler, trainable_names, config, step, base,
                            sampler.per_epoch, peft_model)

    # ---------------------------------------------------------------- 5. final model and summary
    if progress is not None:
        progress.close()
        live.progress = None
    final_dir = out_dir / "final"
    state = trainable_state(accelerator, model, trainable_names)
    state = {n: v.to(getattr(torch, config.save_dtype)) for n, v in state.items()}
    if is_main:
        net = accelerator.unwrap_model(model)
        write_atomically(final_dir, lambda tmp: write_trainable(state, tmp, base, net, peft_model))
        if config.lora is not None and config.lora.save_merged:  # standalone: the adapter merged into the weights
            dtype = getattr(torch, config.save_dtype)
            write_atomically(out_dir / "merged", lambda tmp: export_merged(final_dir, tmp, dtype))
    elapsed = time.perf_counter() - start_time
    summary = {
        "steps": step,
        "epochs": step * config.grad_accum / sampler.per_epoch,
        "samples_seen": step * global_batch,
        "tokens_seen": tokens_seen,
        "time_s": elapsed,
        "samples_per_s": (step - start_step) * global_batch / max(elapsed, 1e-9),
        "global_batch_size": global_batch,
        "num_processes": world,
        "grad_accum": config.grad_accum,
        "mixed_precision": precision.mixed_precision,
        "mixed_precision_choice": {**precision.to_dict(), "mixed_precision": precision.mixed_precision},
        "trainable_params": n_trainable,
        "total_params": n_total,
        "trainable_fraction": n_trainable / n_total,
        "lora_modules": len(lora_modules),
        "initial_train_loss": initial_loss,
        "final_train_loss": final_loss,
        "final_val_loss": val_loss,
        "resumed_from_step": resumed_from,
        "final_dir": str(final_dir),
        "config": config.to_dict(),
    }
    if is_main:
        atomic_write(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        writer.close()
        live.writer = None
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


# ==================================================================== pieces the loop calls


def set_train_mode(model: torch.nn.Module, frozen_eval: bool) -> None:
    """Train mode, except modules whose parameters are all frozen (with ``frozen_eval``): no dropout there."""
    model.train()
    if frozen_eval:
        for module in model.modules():
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()


def optimizer_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters: weight decay on matrices only; with ``projector_lr`` the
    projector's parameters (``model.projector_prefix``) in two more groups at that rate, everything else (LoRA
    adapters, SAM, Q-Former, …) at ``lr``. The order is fixed: a resumed optimizer state must match it."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    own_rate = config.projector_lr is not None
    projector = {n for n, _ in trainable if own_rate and n.startswith(model.projector_prefix)}
    if own_rate and not projector:
        raise ValueError(f"projector_lr is set but no parameter under {model.projector_prefix!r} trains "
                         f"(trainable={config.trainable!r})")
    rest = [(n, p) for n, p in trainable if n not in projector]
    groups = [{"params": [p for _, p in rest if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for _, p in rest if p.ndim < 2], "weight_decay": 0.0}]
    if own_rate:
        mine = [(n, p) for n, p in trainable if n in projector]
        groups += [{"params": [p for _, p in mine if p.ndim >= 2], "weight_decay": config.weight_decay,
                    "lr": config.projector_lr},
                   {"params": [p for _, p in mine if p.ndim < 2], "weight_decay": 0.0, "lr": config.projector_lr}]
    return groups


def token_loss_sum(model, batch: dict[str, torch.Tensor], decoder_only: bool) -> torch.Tensor:
    """Summed cross-entropy over the target tokens (``labels`` -100 where ignored), from the LLM's own loss: a causal
    LM's (transformers' ForCausalLMLoss: shifted labels, fp32 logits) divides its sum by ``num_items_in_batch``, so
    1 gives the sum; T5's takes no such argument and returns the mean over the targets, scaled back here."""
    if decoder_only:
        return model(**batch, num_items_in_batch=1).loss
    return model(**batch).loss * count_targets(batch["labels"], decoder_only)


@torch.no_grad()
def evaluate(accelerator, model, dataset, collate, config: TrainConfig, decoder_only: bool) -> float:
    """Mean token loss over the whole validation set (process r takes samples r, r+P, …)."""
    net = accelerator.unwrap_model(model)
    net.eval()
    loss_sum = torch.zeros((), device=accelerator.device, dtype=torch.float64)
    tokens = torch.zeros((), device=accelerator.device, dtype=torch.float64)
    mine = list(range(accelerator.process_index, len(dataset), accelerator.num_processes))
    for i in range(0, len(mine), config.batch_size):
        batch = collate([dataset[j] for j in mine[i : i + config.batch_size]])
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            loss_sum += token_loss_sum(net, batch, decoder_only).double()
        tokens += count_targets(batch["labels"], decoder_only)
    loss_sum, tokens = accelerator.reduce(loss_sum, "sum"), accelerator.reduce(tokens, "sum")
    set_train_mode(model, config.frozen_eval)
    return float(loss_sum / tokens.clamp(min=1))


@torch.no_grad()
def generate_samples(accelerator, model, dataset, gen_collate, processor, config: TrainConfig) -> list[dict]:
    """Greedy answers for the first ``num_samples`` records (main process only; others return [])."""
    if not accelerator.is_main_process:
        return []
    net = accelerator.unwrap_model(model)
    net.eval()
    records = [dataset[i] for i in range(min(config.num_samples, len(dataset)))]
    batch = gen_collate(records)
    batch = {k: v.to(accelerator.device) for k, v in batch.items()}
    with accelerator.autocast():
        out = net.generate(**batch, max_new_tokens=config.max_new_tokens, do_sample=False,
                           pad_token_id=processor.pad_token_id)
    predictions = processor.batch_decode(out)
    return [{"id": r["id"], "prediction": p, "reference": r["conversations"][-1]["value"]}
            for r, p in zip(records, predictions)]


def trainable_state(accelerator, model, names: list[str]) -> dict[str, torch.Tensor]:
    """Trainable parameters as full CPU tensors (gathered from shards under FSDP / ZeRO-3; all processes call it)."""
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        full = accelerator.get_state_dict(model)
        return {n: full[n].detach().float().cpu().contiguous() for n in names} if accelerator.is_main_process else {}
    params = dict(accelerator.unwrap_model(model).named_parameters())
    return {n: params[n].detach().cpu().contiguous().clone() for n in names}


def write_trainable(state: dict[str, torch.Tensor], directory: Path, base: str, model, peft_model=None) -> None:
    """The trainable-only format of `mmlink.models.loading.save_trainable` (readable by `mmlink.models.load`).

    With LoRA (``peft_model``) the adapter weights go to the PEFT adapter directory ``adapter/``, named in
    ``mmlink_delta.json`` so that the loader applies it; ``trainable.safetensors`` holds the rest (projector, …)."""
    from mmlink.models.loading import write_delta

    state, lora_state = split_lora(state) if peft_model is not None else (state, {})
    if peft_model is not None:
        save_adapter(peft_model, lora_state, directory / ADAPTER_DIR, base)
    # the base is referenced relative to `directory`: a temporary sibling of the final location gives the same path
    write_delta(directory, state, base, model.config, **({"adapter": ADAPTER_DIR} if peft_model is not None else {}))


def write_atomically(target: Path, write) -> None:
    """``write(tmp_dir)`` then rename ``tmp_dir`` → ``target`` (replacing an older ``target``)."""
    tmp = target.parent / f".tmp-{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def save_checkpoint(accelerator, model, optimizer, scheduler, names, config: TrainConfig, step: int, base: str,
                    per_epoch: int, peft_model=None):
    """Write ``checkpoints/step-XXXXXX`` atomically (temp dir + rename) and keep the newest ``keep_last``."""
    root = Path(config.out_dir) / CHECKPOINTS
    target = root / f"step-{step:06d}"
    tmp = root / f".tmp-{target.name}"
    state = trainable_state(accelerator, model, names)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng_rank{accelerator.process_index}.pt")  # every process: its own RNG
    if accelerator.is_main_process:
        write_trainable(state, tmp, base, accelerator.unwrap_model(model), peft_model)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        trainer_state = {
            "step": step,
            "micro_batches_consumed": step * config.grad_accum,  # the data position
            "epoch": step * config.grad_accum // per_epoch,
            "micro_batch_in_epoch": step * config.grad_accum % per_epoch,
            "seed": config.seed,
            "num_processes": accelerator.num_processes,
            "config": config.to_dict(),
        }
        (tmp / STATE_FILE).write_text(json.dumps(trainer_state, indent=2) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        for old in list_checkpoints(Path(config.out_dir))[: -config.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp dirs ``.tmp-*`` are never listed)."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


# Settings that must not change between a run and its resumption (the data order and schedule depend on them).
# max_steps may change (extending a run): `_train` then stretches the schedule and says so.
RESUME_KEYS = ("train_data", "model", "trainable", "lora", "seed", "batch_size", "grad_accum", "lr", "projector_lr",
               "warmup_steps", "warmup_ratio", "weight_decay", "betas")
PATH_KEYS = ("train_data", "model")


def _train_device() -> str:
    """The device the Accelerator will train on: this process's GPU, unless there is none or CPU is forced."""
    forced_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    if forced_cpu or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def check_same_trajectory(saved: dict, config: TrainConfig) -> None:
    """``saved`` (a stored config) and ``config`` agree on every setting in `RESUME_KEYS`."""
    now = config.to_dict()
    changed = [k for k in RESUME_KEYS if k in saved and not _same_setting(k, saved[k], now[k])]
    if changed:
        raise ValueError(f"cannot resume: {', '.join(f'{k} {saved[k]!r} → {now[k]!r}' for k in changed)} changed")


def check_resumable(state: dict, config: TrainConfig, world: int) -> None:
    saved = state.get("config", {})
    check_same_trajectory(saved, config)
    if state.get("num_processes", world) * saved.get("batch_size", 0) != world * config.batch_size:
        raise ValueError(f"cannot resume: the global batch changed ({state.get('num_processes')} → {world} "
                         "processes)")


def _same_setting(key: str, saved: Any, now: Any) -> bool:
    """Equal, or two spellings of one existing file or directory (a relative path a config file now resolves
    against its own directory, an absolute one)."""
    if saved == now:
        return True
    paths = key in PATH_KEYS and isinstance(saved, str) and isinstance(now, str)
    return paths and Path(saved).exists() and Path(now).exists() and os.path.samefile(saved, now)


def restart_schedule_here(optimizer, scheduler) -> None:
    """Set this step's learning rates from the scheduler's (new) schedule: a loaded optimizer holds the rates of the
    schedule its checkpoint was written under, and the first step after the resume would still use them."""
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate's AcceleratedScheduler wraps the LambdaLR
    rates = [base * fn(inner.last_epoch) for base, fn in zip(inner.base_lrs, inner.lr_lambdas)]
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = rate
    inner._last_lr = rates


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as tensors/ints/lists (loadable with ``weights_only=True``)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


__all__ = ["train", "finished_summary", "latest_checkpoint", "list_checkpoints", "save_checkpoint", "SUMMARY_KEYS",
           "SUMMARY_FILE"]
