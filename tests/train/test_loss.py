"""The training loss is the LLM's own (transformers' ForCausalLMLoss with ``num_items_in_batch``): summed over the
target tokens, it equals a cross-entropy computed by hand from the logits, for both families."""

import pytest
import torch
import torch.nn.functional as F

from mmlink.data.synth import synthesize
from mmlink.models import load
from mmlink.train.data import ConversationCollator, ConversationDataset, count_targets
from mmlink.train.loop import token_loss_sum


@pytest.mark.parametrize("preset", ["tiny", "tiny-llava"])
def test_token_loss_sum_is_the_summed_cross_entropy(tmp_path, preset):
    synthesize("mmlink_pair", tmp_path, 3, "train", 0, image_size=32, progress=False)
    model, processor = load(preset)
    model.eval()
    data = ConversationDataset(tmp_path / "data.jsonl")
    batch = ConversationCollator(processor)([data[i] for i in range(3)])
    with torch.no_grad():
        got = token_loss_sum(model, dict(batch), decoder_only=True)
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1].float()
        want = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
                               ignore_index=-100, reduction="sum")
    assert count_targets(batch["labels"], True) > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
