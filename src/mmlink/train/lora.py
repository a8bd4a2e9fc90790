"""LoRA through peft for the training loop: which modules get adapters, adding them, saving and reading them back.

LoRA goes on the LLM's linear layers only. peft's ``target_modules=["q_proj", ...]`` (or ``"all-linear"``) matches by
name anywhere in the model, and a multimodal model has ``q_proj``/``k_proj``/``v_proj`` in its vision tower too
(CLIP's attention — a known LLaVA bug: the tower got adapters it should not have). So `lora_targets` walks the
model's modules itself and hands peft the explicit list of full module names: every ``nn.Linear`` under the model's
``language_model_prefix`` whose last name component is one of ``target_modules``, never ``lm_head``. peft matches
an explicit list exactly, and `add_lora` checks afterwards that it adapted exactly that list.

On disk (each checkpoint and ``final/``): the non-LoRA trainable parameters (projector, SAM, …) stay in mmlink's
trainable-only format (``trainable.safetensors`` + ``mmlink_delta.json``, whose ``"adapter"`` names the adapter
directory) and the LoRA weights are a PEFT adapter directory, ``adapter/`` (``adapter_config.json`` +
``adapter_model.safetensors``), that ``peft.PeftModel.from_pretrained(base_model, dir)`` opens.
`mmlink.models.load` of such a directory merges the adapter into the weights (`mmlink.models.loading`);
`export_merged` writes that merged model as a standalone checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model, load_peft_weights, set_peft_model_state_dict

from mmlink.train.config import LoraSettings

ADAPTER_DIR = "adapter"  # the PEFT adapter directory inside a checkpoint or final/ (named in mmlink_delta.json)
# PeftModel's own parameter names are the wrapped model's names under this prefix (what its adapter files hold).
PEFT_PREFIX = "base_model.model."
# peft's adapter parameters (lora_A, lora_B, lora_embedding_*, lora_magnitude_vector) all carry this in their name —
# the rule peft's get_peft_model_state_dict applies with bias="none".
LORA_MARK = "lora_"


def lora_targets(model: torch.nn.Module, target_modules: tuple[str, ...]) -> list[str]:
    """Full names of the ``nn.Linear`` modules under ``model.language_model_prefix`` whose last name component is in
    ``target_modules`` (never ``lm_head``), in module order. No match is an error listing the names there are."""
    prefix = model.language_model_prefix
    linears = [name for name, module in model.named_modules()
               if name.startswith(prefix) and isinstance(module, torch.nn.Linear)]
    found = [name for name in linears
             if name.rsplit(".", 1)[-1] in target_modules and name.rsplit(".", 1)[-1] != "lm_head"]
    if not found:
        available = sorted({name.rsplit(".", 1)[-1] for name in linears})
        raise ValueError(f"lora.target_modules {list(target_modules)} match no linear layer under {prefix!r}; the "
                         f"LLM's linear layers are named {available}")
    return found


def add_lora(model: torch.nn.Module, settings: LoraSettings) -> PeftModel:
    """Inject LoRA adapters into ``model`` (in place) and return the `PeftModel` around it (used to save adapters).

    Call after the trainable policy has set ``requires_grad``: peft freezes everything but the adapters, and the
    parameters the policy chose train again — except the weight of an adapted layer itself (now
    ``<layer>.base_layer.weight``), which stays frozen: that is what LoRA means."""
    policy = [name for name, p in model.named_parameters() if p.requires_grad]
    targets = lora_targets(model, settings.target_modules)
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, bias="none")
    peft_model = get_peft_model(model, config)
    adapted = sorted(peft_model.targeted_module_names)
    if adapted != sorted(targets):  # peft's matching rules changed under us: never adapt what we did not list
        raise RuntimeError(f"peft adapted {adapted[:5]}… but mmlink asked for exactly {sorted(targets)[:5]}…")
    params = dict(model.named_parameters())
    for name in policy:
        if name in params:
            params[name].requires_grad_(True)
    return peft_model


def adapted_modules(model: torch.nn.Module) -> list[str]:
    """Names of the modules that carry LoRA adapters (peft's ``LoraLayer``s), in module order."""
    from peft.tuners.lora import LoraLayer

    return [name for name, module in model.named_modules() if isinstance(module, LoraLayer)]


def is_lora(name: str) -> bool:
    return LORA_MARK in name


def split_lora(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``state`` (names as in the adapted model) → (non-LoRA parameters, LoRA parameters)."""
    return ({n: v for n, v in state.items() if not is_lora(n)}, {n: v for n, v in state.items() if is_lora(n)})


def save_adapter(peft_model: PeftModel, lora_state: dict[str, torch.Tensor], directory: Path, base: str) -> None:
    """Write the PEFT adapter directory from ``lora_state`` (gathered CPU tensors, names as in the adapted model) —
    through peft's own ``save_pretrained``, so the files are exactly what ``PeftModel.from_pretrained`` reads."""
    peft_model.peft_config["default"].base_model_name_or_path = str(base)  # provenance, in adapter_config.json
    # save_embedding_layers=False: "auto" would look the base up on the Hub; embeddings are never adapted here.
    peft_model.save_pretrained(str(directory), state_dict={PEFT_PREFIX + n: v for n, v in lora_state.items()},
                               save_embedding_layers=False)


def load_adapter(peft_model: PeftModel, directory: Path) -> None:
    """Copy the LoRA weights of an adapter directory into ``peft_model``'s adapters (resume); every adapter
    parameter must be in the file."""
    result = set_peft_model_state_dict(peft_model, load_peft_weights(str(directory), device="cpu"))
    missing = [k for k in result.missing_keys if is_lora(k)]
    if missing or result.unexpected_keys:
        raise ValueError(f"{directory}: adapter does not fit the model (missing {missing[:5]}, unexpected "
                         f"{list(result.unexpected_keys)[:5]})")


def export_merged(delta_dir: str | Path, out_dir: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write the model of a trainable-only save (e.g. ``final/``; a LoRA run's adapter merged into the weights) as a
    standalone checkpoint (``save_pretrained`` of model and processor): loadable without the base or peft. Used by
    ``lora.save_merged`` and ``mmlink export`` (`mmlink.train.export`)."""
    from mmlink.models import load

    model, processor = load(delta_dir)  # the loader merges the adapter (merge_and_unload)
    if dtype is not None:
        model.to(dtype)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    if processor is not None:
        processor.save_pretrained(out_dir)
    return out_dir


__all__ = ["ADAPTER_DIR", "PEFT_PREFIX", "lora_targets", "add_lora", "adapted_modules", "is_lora", "split_lora",
           "save_adapter", "load_adapter", "export_merged"]
