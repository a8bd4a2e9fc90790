"""MmlinkQFormerProcessor: sample forms, input_ids layout, Q-Former rows, padding, labels and input errors."""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image

from mmlink.models import load

Q = 4  # num_query_tokens of the tiny preset
IMG = 260  # image_token_index of the tiny preset
PAD = 0
EOS = 2
PROMPT = "Image 1: <image>\nImage 2: <image>\nWhat is common?"


@pytest.fixture(scope="module")
def tiny():
    return load("tiny")


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


def _img(i: int, size=(40, 30)) -> Image.Image:
    """A distinct solid-colour image per index (distinct pixel_values rows)."""
    return Image.new("RGB", size, ((37 * i) % 256, (91 * i + 13) % 256, (53 * i + 200) % 256))


def _ids(processor, text: str, special: bool = False) -> list[int]:
    return list(processor.tokenizer(text, add_special_tokens=special)["input_ids"])


def _equal(a, b) -> None:
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_tiny_processor_settings(processor):
    assert (processor.num_query_tokens, processor.image_token_index, processor.max_images) == (Q, IMG, 8)
    assert processor.pad_token_id == PAD and processor.tokenizer.eos_token_id == EOS


# ---------------------------------------------------------------------------------------------- sample forms


def test_interleaved_list_and_placeholder_string_give_identical_tensors(processor, tmp_path):
    a, b = _img(1), _img(2, size=(20, 50))
    from_string = processor(PROMPT, [a, b])
    from_list = processor(["Image 1: ", a, "\nImage 2: ", b, "\nWhat is common?"])
    _equal(from_string, from_list)
    # pathlib.Path images (lossless PNG) give the same tensors as the PIL images they hold.
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    a.save(pa)
    b.save(pb)
    _equal(from_string, processor(["Image 1: ", pa, "\nImage 2: ", pb, "\nWhat is common?"]))
    # ... and the batch forms agree too.
    _equal(
        processor([PROMPT, "<image> Describe."], [[a, b], [b]]),
        processor([["Image 1: ", a, "\nImage 2: ", b, "\nWhat is common?"], [b, " Describe."]]),
    )


def test_placeholders_become_query_token_runs_at_their_positions(processor):
    batch = processor(PROMPT, [_img(1), _img(2)])
    expected = (
        _ids(processor, "", special=True)
        + _ids(processor, "Image 1: ")
        + [IMG] * Q
        + _ids(processor, "\nImage 2: ")
        + [IMG] * Q
        + _ids(processor, "\nWhat is common?")
    )
    assert batch["input_ids"].tolist() == [expected]
    ids = batch["input_ids"][0]
    first = len(_ids(processor, "Image 1: "))
    second = first + Q + len(_ids(processor, "\nImage 2: "))
    positions = (ids == IMG).nonzero().flatten().tolist()
    assert positions == list(range(first, first + Q)) + list(range(second, second + Q))
    assert batch["attention_mask"].tolist() == [[1] * len(expected)]
    assert "labels" not in batch


def test_prompt_without_placeholders_puts_the_images_first(processor):
    prompt = "What is this?"
    batch = processor(prompt, [_img(1), _img(2)])
    text_ids = _ids(processor, prompt, special=True)
    assert len(text_ids) == len(prompt.encode())  # byte-level: one token per byte, no specials
    assert batch["input_ids"].tolist() == [[IMG] * (2 * Q) + text_ids]
    # The equivalent interleaved sample (images, then the text) encodes the same way.
    _equal(batch, processor([_img(1), _img(2), prompt]))


def test_one_qformer_row_per_image_holding_its_samples_instruction(processor):
    batch = processor([PROMPT, "Describe <image> briefly."], [[_img(1), _img(2)], [_img(3)]])
    q_ids, q_mask = batch["qformer_input_ids"], batch["qformer_attention_mask"]
    assert q_ids.shape[0] == q_mask.shape[0] == batch["pixel_values"].shape[0] == 3
    decoded = [
        processor.qformer_tokenizer.decode(row[m.bool()], skip_special_tokens=True) for row, m in zip(q_ids, q_mask)
    ]
    assert decoded == ["Image 1: Image 2: What is common?"] * 2 + ["Describe briefly."]
    assert all("<image>" not in d for d in decoded)
    assert torch.equal(q_ids[0], q_ids[1]) and torch.equal(q_mask[0], q_mask[1])
    # The instruction row is the prompt without placeholders, tokenised on its own (right-padded by the tokenizer).
    alone = processor.qformer_tokenizer("Describe briefly.")["input_ids"]
    assert q_ids[2, : len(alone)].tolist() == alone and q_mask[2].sum() == len(alone)


def test_batch_of_1_3_and_8_images_maps_every_image_to_its_sample(tiny):
    model, processor = tiny
    images = [_img(i) for i in range(12)]
    samples = ["One: <image>", "<image><image><image> Three?", "Eight: " + "<image> " * 8 + "compare."]
    batch = processor(samples, [images[:1], images[1:4], images[4:]])
    assert batch["pixel_values"].shape == (12, 3, 32, 32)
    assert batch["qformer_input_ids"].shape[0] == 12
    assert (batch["input_ids"] == IMG).sum(dim=1).tolist() == [Q, 3 * Q, 8 * Q]
    assert model.image_to_sample(batch["input_ids"], 12).tolist() == [0, 1, 1, 1] + [2] * 8
    # Rows follow the images in order, sample by sample.
    expected = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    assert torch.equal(batch["pixel_values"], expected)
    assert len({tuple(row[:, 0, 0].tolist()) for row in batch["pixel_values"]}) == 12


# ---------------------------------------------------------------------------------------------- padding, labels


def test_left_padding_by_default(processor):
    short, long = "<image> Hi", "<image> A much longer question?"
    batch = processor([short, long], [[_img(1)], [_img(2)]])
    alone = processor(short, [_img(1)])["input_ids"][0].tolist()
    width = batch["input_ids"].shape[1]
    n_pad = width - len(alone)
    assert n_pad == len("A much longer question?") - len("Hi") > 0
    assert batch["input_ids"][0].tolist() == [PAD] * n_pad + alone
    assert batch["attention_mask"][0].tolist() == [0] * n_pad + [1] * len(alone)
    assert batch["attention_mask"][1].tolist() == [1] * width


def test_right_padding_and_labels_with_targets(processor):
    prompts = ["<image> Colour?", "<image> What is in <image>?"]
    images = [[_img(1)], [_img(2), _img(3)]]
    targets = ["red", "a blue square"]
    batch = processor(prompts, images, targets=targets)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape == mask.shape == labels.shape
    for i, (prompt, imgs, target) in enumerate(zip(prompts, images, targets)):
        prompt_ids = processor(prompt, imgs)["input_ids"][0].tolist()
        answer = _ids(processor, target) + [EOS]
        n = len(prompt_ids) + len(answer)
        n_pad = ids.shape[1] - n
        assert ids[i].tolist() == prompt_ids + answer + [PAD] * n_pad  # right padding
        assert mask[i].tolist() == [1] * n + [0] * n_pad
        assert labels[i].tolist() == [-100] * len(prompt_ids) + answer + [-100] * n_pad
    assert (labels[ids == IMG] == -100).all()
    assert (labels[mask == 0] == -100).all()
    assert mask[0].sum() < mask[1].sum() and mask[0, -1] == 0  # the shorter row really is padded


def test_single_target_string_and_explicit_left_padding(processor):
    batch = processor("<image> Colour?", [_img(1)], targets="red")
    assert batch["labels"][0].tolist()[-4:] == _ids(processor, "red") + [EOS]
    batch = processor(["<image> A?", "<image> Longer?"], [[_img(1)], [_img(2)]], targets=["x", "y"], padding_side="left")
    assert batch["attention_mask"][0, 0] == 0 and batch["labels"][0, 0] == -100 and batch["input_ids"][0, 0] == PAD
    assert batch["labels"][0, -2:].tolist() == _ids(processor, "x") + [EOS]


# ---------------------------------------------------------------------------------------------- errors


def _bad_second_sample(processor, sample, images):
    """Encode a batch whose sample 0 is fine and sample 1 is ``(sample, images)``."""
    return processor(["<image> fine", sample], [[_img(0)], images])


@pytest.mark.parametrize(
    "sample, n_images, message",
    [
        ("<image> and <image>", 1, "2 <image> placeholder(s) but 1 image(s)"),
        ("Only <image> here", 2, "1 <image> placeholder(s) but 2 image(s)"),
        ("<image> " * 9 + "?", 9, "9 images exceed max_images=8"),
        ("", 1, "the prompt is empty"),
        ("  \n\t ", 1, "the prompt is empty"),
        ("No image at all", 0, "no image given"),
    ],
    ids=["more-placeholders", "fewer-placeholders", "nine-images", "empty", "whitespace", "no-image"],
)
def test_bad_sample_is_a_value_error_naming_it(processor, sample, n_images, message):
    with pytest.raises(ValueError, match="^sample 1: .*" + re.escape(message)):
        _bad_second_sample(processor, sample, [_img(i) for i in range(n_images)])


def test_nine_interleaved_images_exceed_max_images(processor):
    with pytest.raises(ValueError, match=r"sample 0: 9 images exceed max_images=8"):
        processor([x for i in range(9) for x in (_img(i), " ")])


def test_missing_image_file_names_the_path(processor, tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(FileNotFoundError, match="sample 1: .*" + re.escape(str(missing))):
        _bad_second_sample(processor, "<image> ?", [missing])


def test_corrupt_image_file_names_the_path(processor, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    with pytest.raises(ValueError, match="sample 1: .*" + re.escape(str(corrupt))):
        _bad_second_sample(processor, "<image> ?", [corrupt])
    with pytest.raises(ValueError, match=re.escape(str(corrupt))):
        processor(["Look: ", corrupt])


def test_mismatched_number_of_targets(processor):
    with pytest.raises(ValueError, match="got 2 samples but 1 targets"):
        processor(["<image> a", "<image> b"], [[_img(0)], [_img(1)]], targets=["only one"])


def test_mismatched_number_of_image_lists(processor):
    with pytest.raises(ValueError, match="got 2 samples but 1 image lists"):
        processor(["<image> a", "<image> b"], [[_img(0)]])


def test_int_image_in_interleaved_sample(processor):
    with pytest.raises(ValueError, match=r"^sample 1: items must be str, PIL.Image or pathlib.Path, got int"):
        processor([[_img(0), "fine"], [_img(1), 3, "bad"]])


def test_int_image_beside_placeholder_string(processor):
    with pytest.raises(ValueError, match=r"^sample 1: .*int"):
        _bad_second_sample(processor, "<image> ?", [3])


def test_images_both_interleaved_and_separate(processor):
    with pytest.raises(ValueError, match="sample 0: pass images either interleaved"):
        processor([_img(0), "x"], [_img(1)])


# ---------------------------------------------------------------------------------------------- text-only rows


@pytest.mark.parametrize("side", ["left", "right"])
def test_encode_conversation_without_images_gives_the_same_text_rows(processor, tmp_path, side):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    _img(1).save(a)
    _img(2).save(b)
    convs = [
        [{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nSame?"}, {"from": "gpt", "value": "no"}],
        [{"from": "human", "value": "What is it?"}, {"from": "gpt", "value": "a square"}],  # images first
    ]
    with_images = processor.encode_conversation(convs, [[a, b], [a]], padding_side=side)
    text_only = processor.encode_conversation(convs, [[a, b], [a]], padding_side=side, encode_images=False)
    assert sorted(text_only.keys()) == ["attention_mask", "input_ids", "labels"]
    for key in text_only:
        assert torch.equal(text_only[key], with_images[key]), key


def test_encode_conversation_without_images_counts_but_does_not_load_them(processor, tmp_path):
    missing = tmp_path / "never-written.png"
    turns = [{"from": "human", "value": "<image> and <image>?"}]
    batch = processor.encode_conversation([turns], [[missing, missing]], encode_images=False)
    assert int((batch["input_ids"] == IMG).sum()) == 2 * Q  # not loaded, yet placed
    with pytest.raises(ValueError, match="conversation 0: 2 <image> placeholder"):
        processor.encode_conversation([turns], [[missing]], encode_images=False)
    with pytest.raises(ValueError, match="max_images"):
        processor.encode_conversation([turns], [[missing] * 9], encode_images=False)


def test_encode_conversation_of_text_only_records(processor):
    """Instruction mixes hold text-only conversations: no image tokens, no Q-Former row, and a batch without any
    image still has (0, C, H, W) pixel_values."""
    text = [{"from": "human", "value": "What is 2 + 2?"}, {"from": "gpt", "value": "4"}]
    image = [{"from": "human", "value": "<image> colour?"}, {"from": "gpt", "value": "red"}]
    alone = processor.encode_conversation([text], [[]])
    assert tuple(alone["pixel_values"].shape[:2]) == (0, 3) and alone["pixel_values"].shape[2:] == \
        processor(["<image> x"], [[_img(0)]])["pixel_values"].shape[2:]
    assert alone["qformer_input_ids"].shape[0] == 0 and alone["qformer_attention_mask"].shape[0] == 0
    assert not bool((alone["input_ids"] == IMG).any())
    assert alone["input_ids"][0].tolist() == _ids(processor, "", special=True) + _ids(processor, "What is 2 + 2?") \
        + _ids(processor, "4") + [EOS]
    assert alone["labels"][0].tolist()[-2:] == _ids(processor, "4") + [EOS]

    mixed = processor.encode_conversation([text, image], [[], [_img(1)]])
    assert mixed["pixel_values"].shape[0] == 1 and mixed["qformer_input_ids"].shape[0] == 1
    assert int((mixed["input_ids"][0] == IMG).sum()) == 0 and int((mixed["input_ids"][1] == IMG).sum()) == Q
    assert mixed["input_ids"][0, : alone["input_ids"].shape[1]].tolist() == alone["input_ids"][0].tolist()
    with pytest.raises(ValueError, match="no image given"):  # a prompt to generate from still needs one
        processor("What is 2 + 2?")
