"""LoRA through peft on `tiny`: adapters on the LLM's linear layers only (every adapted module listed), the projector
at its own learning rate, only adapters + projector change while the loss falls, adapter directories that
`peft.PeftModel.from_pretrained` opens, a merged export computing the same logits, and a bit-exact resume after
SIGKILL."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from test_loop import cfg, data, run_and_kill  # noqa: F401 (shared fixtures)

from mmlink.cli import main
from mmlink.models import load
from mmlink.models.qformer import MmlinkQFormerForConditionalGeneration
from mmlink.train import TrainConfig, train
from mmlink.train.config import LoraSettings
from mmlink.train.data import ConversationCollator, ConversationDataset
from mmlink.train.loop import list_checkpoints, optimizer_groups
from mmlink.train.lora import PEFT_PREFIX, adapted_modules, add_lora, lora_targets

# Every module LoRA may adapt on `tiny` (2 LLaMA layers) with the default targets — and nothing else.
ADAPTED = [f"language_model.model.layers.{i}.{m}" for i in range(2)
           for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
PROJECTOR = {"language_projection.weight", "language_projection.bias"}
pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")


def lora_cfg(data, out, **kw):
    return cfg(data, out, **{"trainable": "projection", "lora": {"r": 4, "alpha": 8, "dropout": 0.1}, **kw})


def logits(model, processor, data, n=2):
    records = ConversationDataset(data / "train" / "data.jsonl")
    batch = ConversationCollator(processor)([records[i] for i in range(n)])
    with torch.no_grad():
        return model.eval()(**{k: v for k, v in batch.items() if k != "labels"}).logits


def test_lora_goes_on_the_llms_linear_layers_only():
    model, _ = load("tiny")
    # A CLIP tower names its attention projections q_proj/k_proj/v_proj too — LLaVA's "all-linear" bug adapted them.
    # Plant such layers in the vision tower and the Q-Former: matching by name alone would take them.
    model.vision_model.encoder.layers[0].self_attn.q_proj = torch.nn.Linear(32, 32)
    model.qformer.encoder.layer[0].attention.attention.v_proj = torch.nn.Linear(32, 32)
    model.set_trainable(("language_projection.",))
    add_lora(model, LoraSettings(r=4, alpha=8))
    adapted = adapted_modules(model)
    print("adapted modules:", *adapted, sep="\n  ")
    assert adapted == ADAPTED
    assert all(name.startswith(model.language_model_prefix) for name in adapted)
    assert "language_model.lm_head" not in adapted
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert {n for n in trainable if "lora_" not in n} == PROJECTOR  # the policy's projector, nothing else
    assert {n.split(".lora_")[0] for n in trainable if "lora_" in n} == set(ADAPTED)
    frozen = dict(model.named_parameters())
    assert not any(frozen[f"{m}.base_layer.weight"].requires_grad for m in ADAPTED)  # the adapted weights stay frozen


def test_target_modules_choose_among_the_llms_layers_and_matching_nothing_is_an_error():
    model, _ = load("tiny")
    assert lora_targets(model, ("q_proj", "v_proj", "query", "qkv", "dense", "fc1")) == [
        m for m in ADAPTED if m.endswith(("q_proj", "v_proj"))]  # the Q-Former's query/dense, the tower's qkv: never
    with pytest.raises(ValueError, match=r"match no linear layer under 'language_model\.'.*\['down_proj', 'gate_proj'"):
        lora_targets(model, ("wi", "wo"))  # Flan-T5's names: say which names the LLM has


def test_lora_run_trains_only_adapters_and_projector_and_the_loss_falls(data, tmp_path):
    out = tmp_path / "o"
    overfit = dict(train_data=str(data / "two" / "data.jsonl"), max_steps=30, warmup_steps=0, projector_lr=1e-3)
    summary = train(lora_cfg(data, out, **overfit, save_every=10))
    # tiny's lm_head (random, std 0.02, frozen as in CaD-VI) bounds its logits to about ±0.6, so no LoRA run can
    # halve the loss from ln(260) ≈ 5.56; what shows the adapters learn is the fall beside the projector-only control.
    control = train(lora_cfg(data, tmp_path / "control", **overfit, lora=None))
    print({k: (summary[k], control[k]) for k in ("initial_train_loss", "final_train_loss")})
    assert summary["final_train_loss"] < summary["initial_train_loss"] - 0.15, summary
    assert summary["final_train_loss"] < control["final_train_loss"] - 0.15
    assert summary["lora_modules"] == len(ADAPTED) and control["lora_modules"] == 0

    final = out / "final"
    assert set(load_file(final / "trainable.safetensors")) == PROJECTOR  # mmlink's delta: the non-LoRA part
    assert json.loads((final / "mmlink_delta.json").read_text())["adapter"] == "adapter"
    adapter = load_file(final / "adapter" / "adapter_model.safetensors")  # PEFT's part: LoRA of the LLM only
    assert {k.removeprefix(PEFT_PREFIX).split(".lora_")[0] for k in adapter} == set(ADAPTED)

    # `load(final)` = base + delta + merged adapter: it differs from the base in exactly the adapted layers' weights
    # and the projector; vision tower, Q-Former, SAM layers, embeddings and lm_head are bit-identical.
    trained, _ = load(final)
    fresh = dict(load("tiny")[0].named_parameters())
    changed = {n for n, p in trained.named_parameters() if not torch.equal(p, fresh[n])}
    assert changed == {f"{m}.weight" for m in ADAPTED} | PROJECTOR

    # The projector trains at projector_lr, the adapters at lr; weight decay on matrices only.
    opt = torch.load(out / "checkpoints" / "step-000010" / "optimizer.pt", weights_only=True)
    groups = [(g["initial_lr"], g["weight_decay"], len(g["params"])) for g in opt["param_groups"]]
    assert groups == [(1e-2, 0.05, 2 * len(ADAPTED)), (1e-2, 0.0, 0), (1e-3, 0.05, 1), (1e-3, 0.0, 1)]


def test_adapter_opens_with_peft_and_the_merged_export_gives_the_same_logits(data, tmp_path):
    out = tmp_path / "o"
    train(lora_cfg(data, out, max_steps=4, save_every=2, lora={"r": 4, "alpha": 8, "save_merged": True}))
    final = out / "final"

    # The standard PEFT way: base model + mmlink's non-LoRA delta, then PeftModel.from_pretrained(base, adapter/).
    base, processor = load("tiny")
    result = base.load_state_dict(load_file(final / "trainable.safetensors"), strict=False)
    assert not result.unexpected_keys
    base_logits = logits(base, processor, data)
    peft_model = PeftModel.from_pretrained(base, final / "adapter")
    assert adapted_modules(peft_model.base_model.model) == ADAPTED
    adapter_logits = logits(peft_model, processor, data)
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-3)  # the adapter does something

    merged, _ = load(final)  # mmlink's loader merges the adapter (merge_and_unload): a plain model
    assert not adapted_modules(merged)
    torch.testing.assert_close(logits(merged, processor, data), adapter_logits, rtol=1e-4, atol=1e-5)
    exported, exported_processor = load(out / "merged")  # standalone: no base, no peft
    assert not (out / "merged" / "mmlink_delta.json").exists()
    torch.testing.assert_close(logits(exported, exported_processor, data), adapter_logits, rtol=1e-4, atol=1e-5)

    # Each checkpoint's adapter directory opens the same way.
    ckpt = PeftModel.from_pretrained(load("tiny")[0], out / "checkpoints" / "step-000002" / "adapter")
    assert adapted_modules(ckpt.base_model.model) == ADAPTED


def test_lora_resume_after_sigkill_gives_the_same_weights(data, tmp_path):
    n, k = 6, 2
    settings = dict(max_steps=n, save_every=2, keep_last=2, projector_lr=1e-3)
    ref = tmp_path / "ref"
    train(lora_cfg(data, ref, **settings))

    out = tmp_path / "killed"
    config = run_and_kill(lora_cfg(data, out, **settings), k, tmp_path)
    assert [p.name for p in list_checkpoints(out)] == ["step-000002"]
    assert (out / "checkpoints" / "step-000002" / "adapter" / "adapter_model.safetensors").exists()

    assert main(["train", "--config", str(config), "--resume"]) == 0
    assert json.loads((out / "train_summary.json").read_text())["resumed_from_step"] == k
    for part in ("trainable.safetensors", "adapter/adapter_model.safetensors"):
        got, want = load_file(out / "final" / part), load_file(ref / "final" / part)
        assert got.keys() == want.keys()
        for name in want:  # one thread, same data order, same RNG (LoRA dropout): bit-exact
            assert torch.equal(got[name], want[name]), (part, name)
    with pytest.raises(ValueError, match="cannot resume: lora"):
        train(lora_cfg(data, out, **settings, lora={"r": 8}), resume=True)


def test_the_projection_policy_follows_the_models_projector_prefix(data, tmp_path, monkeypatch):
    # A model family whose projector lives elsewhere (LLaVA: model.multi_modal_projector.): here SAM's layers play it.
    monkeypatch.setattr(MmlinkQFormerForConditionalGeneration, "projector_prefix", "sam.")
    out = tmp_path / "o"
    train(cfg(data, out, trainable="projection", max_steps=1))
    names = set(load_file(out / "final" / "trainable.safetensors"))
    assert names and all(n.startswith("sam.") for n in names)


def test_projector_lr_needs_a_trainable_projector():
    model, _ = load("tiny")
    model.set_trainable(("sam.",))
    config = TrainConfig(train_data="d.jsonl", out_dir="o", projector_lr=1e-3)
    with pytest.raises(ValueError, match="projector_lr is set but no parameter under 'language_projection.'"):
        optimizer_groups(model, config)
    model.set_trainable(("sam.", "language_projection."))
    groups = optimizer_groups(model, config)
    assert [g.get("lr") for g in groups] == [None, None, 1e-3, 1e-3]
    assert sum(len(g["params"]) for g in groups[2:]) == 2


def test_lora_on_the_llava_family_spares_the_clip_tower():
    model, _ = load("tiny-llava")
    # CLIP's attention layers are named q_proj/k_proj/v_proj/out_proj, like the LLM's: the known LLaVA bug's trap.
    assert any(n.endswith("self_attn.q_proj") for n, _ in model.model.vision_tower.named_modules())
    model.set_trainable((model.projector_prefix,))
    add_lora(model, LoraSettings(r=4, alpha=8))
    adapted = adapted_modules(model)
    print("adapted modules:", *adapted, sep="\n  ")
    assert adapted == [name.replace("language_model.model.", "model.language_model.") for name in ADAPTED]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n}
    assert trainable == {f"model.multi_modal_projector.linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
