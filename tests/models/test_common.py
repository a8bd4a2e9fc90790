"""mmlink.models.common: which sample each image belongs to (from the placeholder runs), the LLM's linear layers,
freezing by name prefix, and text-only prompt embeddings that still reach every trainable parameter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmlink.models.common import TrainableMixin, image_to_sample, llm_linears

IMG = 9


def _ids(*rows: list[int]) -> torch.Tensor:
    return torch.tensor(rows)


def test_image_to_sample_follows_the_placeholder_runs():
    ids = _ids([1, IMG, IMG, 5, IMG, IMG, 0], [IMG, IMG, 3, 3, 3, 3, 3], [2, 3, 4, 5, 6, 7, 8])
    assert image_to_sample(ids, 3, IMG, 2, max_images=4).tolist() == [0, 0, 1]  # no image in sample 2
    assert image_to_sample(_ids([IMG] * 6), 3, IMG, 2, 3).tolist() == [0, 0, 0]
    assert image_to_sample(_ids([1, 2]), 0, IMG, 2, 3).tolist() == []


def test_image_to_sample_errors_say_what_does_not_add_up():
    with pytest.raises(ValueError, match=r"exactly 2 placeholder tokens; got placeholder counts \[3, 2\]"):
        image_to_sample(_ids([IMG, IMG, IMG], [IMG, IMG, 1]), 2, IMG, 2, 4)
    with pytest.raises(ValueError, match=r"placeholders for 2 images but pixel_values \(or image_features\) has 3"):
        image_to_sample(_ids([IMG, IMG], [IMG, IMG]), 3, IMG, 2, 4)
    with pytest.raises(ValueError, match="a sample has 3 images; max_images is 2"):
        image_to_sample(_ids([IMG] * 6), 3, IMG, 2, 2)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)


class Toy(TrainableMixin, nn.Module):
    """An mmlink-shaped model: a vision tower whose blocks are also called ``layers``, a projector, an LLM."""

    projector_prefix = "proj."
    language_model_prefix = "lm."
    lm_head_name = "lm.head"

    def __init__(self):
        super().__init__()
        self.vision = nn.Module()
        self.vision.layers = nn.ModuleList([Block()])
        self.proj = nn.Linear(4, 4)
        self.lm = nn.Module()
        self.lm.embed = nn.Embedding(10, 4)
        self.lm.layers = nn.ModuleList([Block(), Block()])
        self.lm.head = nn.Linear(4, 10, bias=False)

    def get_input_embeddings(self):
        return self.lm.embed


def test_llm_linears_are_the_decoder_blocks_and_the_head_only():
    assert [n for n, _ in llm_linears(Toy())] == ["lm.layers.0.q", "lm.layers.1.q", "lm.head"]
    bare = nn.Module()  # a bare causal LM: no prefix, head "lm_head"
    bare.model = nn.Module()
    bare.model.layers = nn.ModuleList([Block()])
    bare.model.embed = nn.Linear(2, 2)
    bare.lm_head = nn.Linear(4, 3)
    assert [n for n, _ in llm_linears(bare)] == ["model.layers.0.q", "lm_head"]


def test_llm_linears_of_a_real_family_skip_the_vision_tower():
    from mmlink.models import load

    model, _ = load("tiny-llava")
    names = [n for n, _ in llm_linears(model)]
    assert len(names) == 2 * 7 + 1 and names[-1] == "lm_head"  # 2 Llama layers of q, k, v, o, gate, up, down
    assert all(n.startswith("model.language_model.layers.") for n in names[:-1])
    assert any(".layers." in n for n, m in model.named_modules() if isinstance(m, nn.Linear) and "vision" in n)


def test_set_trainable_by_prefix_counts_parameters():
    toy = Toy()
    total = sum(p.numel() for p in toy.parameters())
    assert toy.set_trainable(("proj.",)) == (20, total)
    assert [n for n, p in toy.named_parameters() if p.requires_grad] == ["proj.weight", "proj.bias"]
    assert toy.set_trainable(("proj.", "lm.layers.1.")) == (20 + 28, total)  # Linear 20 + LayerNorm 8
    assert toy.set_trainable(()) == (0, total)


def test_text_only_embeddings_touch_every_trainable_parameter_outside_the_llm():
    toy = Toy()
    toy.set_trainable(("proj.", "vision.", "lm.layers.0."))
    ids = torch.tensor([[1, 2, 3]])
    out = toy.text_only_embeddings(ids)
    assert torch.equal(out, toy.lm.embed(ids))  # the values are the embeddings: the extra terms are × 0
    out.sum().backward()
    for name, p in toy.named_parameters():
        if name.startswith(("proj.", "vision.")):
            assert p.grad is not None and not p.grad.any(), name  # reached, with a zero gradient
        else:
            assert p.grad is None, name  # the LLM's own parameters are not touched by the zero terms
    with torch.no_grad():
        plain = toy.text_only_embeddings(ids)
    assert plain.grad_fn is None and torch.equal(plain, toy.lm.embed(ids))
    frozen = Toy()
    frozen.set_trainable(("lm.",))  # nothing trainable outside the LLM: the embeddings as they are
    assert torch.equal(frozen.text_only_embeddings(ids), frozen.lm.embed(ids))
