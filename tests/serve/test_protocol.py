"""mmlink.serve.protocol: the chat-completions request validated (errors name the first wrong field), its messages
merged into mmlink's turns with the images in placeholder order, and its sampling settings."""

import base64
import io

import pytest
from PIL import Image

from mmlink.serve.media import MediaPolicy, RequestError
from mmlink.serve.protocol import Conversation, Sampling, parse_request, sampling, to_conversation


def _url(color, size=(8, 8)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


RED, BLUE = _url((255, 0, 0)), _url((0, 0, 255), (6, 4))


def _image(url):
    return {"type": "image_url", "image_url": {"url": url}}


def _text(text):
    return {"type": "text", "text": text}


def _request(*messages, **fields):
    return parse_request({"model": "tiny", "messages": list(messages), **fields})


def _conv(*messages, limit=8) -> Conversation:
    return to_conversation(_request(*messages), MediaPolicy(), limit)


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0}, "top_p"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 9}, "n"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 2.5}, "temperature"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": "many"},
     "max_completion_tokens"),
])
def test_parse_request_names_the_first_wrong_field(body, param):
    with pytest.raises(RequestError) as err:
        parse_request(body)
    assert err.value.param == param and err.value.status == 400 and err.value.message.startswith(f"{param}: ")


def test_parse_request_ignores_unknown_fields_and_needs_an_object():
    req = parse_request({"model": "m", "messages": [{"role": "user", "content": "x", "name": "u"}], "user": "me",
                         "logprobs": False})
    assert req.model == "m" and req.messages[0].content == "x" and not req.stream and req.n == 1
    with pytest.raises(RequestError, match="the request body must be a JSON object") as err:
        parse_request(["model"])
    assert err.value.param is None


def test_system_text_goes_before_the_first_user_turn_and_images_become_placeholders():
    conv = _conv({"role": "system", "content": "Be brief."},
                 {"role": "user", "content": [_text("Left:"), _image(RED), _text("Right:"), _image(BLUE)]},
                 {"role": "assistant", "content": "A red and a blue square."},
                 {"role": "user", "content": "Which is wider?"})
    assert conv.turns == [{"from": "human", "value": "Be brief.\nLeft:\n<image>\nRight:\n<image>"},
                          {"from": "gpt", "value": "A red and a blue square."},
                          {"from": "human", "value": "Which is wider?"}]
    assert [(im.mode, im.size, im.getpixel((0, 0))) for im in conv.images] == [("RGB", (8, 8), (255, 0, 0)),
                                                                              ("RGB", (6, 4), (0, 0, 255))]


def test_consecutive_messages_of_one_role_merge():
    conv = _conv({"role": "user", "content": [_image(RED)]}, {"role": "user", "content": "What colour?"},
                 {"role": "assistant", "content": "Red."}, {"role": "assistant", "content": [_text("Bright red.")]},
                 {"role": "system", "content": "ignored after the start"}, {"role": "user", "content": "Sure?"})
    assert conv.turns == [{"from": "human", "value": "<image>\nWhat colour?"},
                          {"from": "gpt", "value": "Red.\nBright red."}, {"from": "human", "value": "Sure?"}]


@pytest.mark.parametrize("messages, param, message", [
    ([{"role": "assistant", "content": "Hi"}, {"role": "user", "content": [_image(RED)]}], "messages.0",
     "the conversation must start with a user message"),
    ([{"role": "user", "content": [_image(RED)]}, {"role": "assistant", "content": "ok"}], "messages",
     "the last message must be the user's"),
    ([{"role": "user", "content": "no picture"}], "messages", "the model needs at least one image"),
    ([{"role": "user", "content": [_image(RED), {"type": "text"}]}], "messages.0.content.1", "a text part needs text"),
    ([{"role": "user", "content": [_image(RED), {"type": "image_url"}]}], "messages.0.content.1",
     "an image_url part needs image_url.url"),
    ([{"role": "user", "content": [_image(RED), _text("see <image>")]}], "messages.0.content.1",
     "text may not contain <image>: images are image_url parts"),
    ([{"role": "user", "content": [_image(RED)]}, {"role": "assistant", "content": [_image(RED)]},
      {"role": "user", "content": "x"}], "messages.1.content.0", "only user messages may carry images"),
    ([{"role": "user", "content": [_image("ftp://host/a.png")]}], "messages.0.content.0.image_url",
     "image_url must be a data:, file:// or http"),
])
def test_conversation_errors_name_the_message_and_part(messages, param, message):
    with pytest.raises(RequestError, match=message) as err:
        _conv(*messages)
    assert err.value.param == param and err.value.status == 400


def test_too_many_images_are_refused_before_any_is_read():
    messages = [{"role": "user", "content": [_image(RED), _image("data:broken"), _image(BLUE)]}]
    with pytest.raises(RequestError, match=r"3 images exceed the limit of 2 per request \(--limit-images\)") as err:
        _conv(*messages, limit=2)
    assert (err.value.code, err.value.param) == ("too_many_images", "messages")


def test_sampling_settings():
    greedy = sampling(_request({"role": "user", "content": "x"}, max_tokens=9, stop="END", seed=3))
    assert greedy == Sampling(max_tokens=9, temperature=0.0, top_p=1.0, seed=3, stop=("END",), n=1)
    assert greedy.greedy and greedy.batch_key() == ("greedy",)
    config = greedy.generation_config(12)
    assert (config.max_new_tokens, config.do_sample) == (12, False)
    hot = sampling(_request({"role": "user", "content": "x"}, max_tokens=9, max_completion_tokens=4, temperature=0.7,
                            top_p=0.9, n=3, stop=["a", "b"]))
    assert (hot.max_tokens, hot.n, hot.stop, hot.greedy) == (4, 3, ("a", "b"), False)  # max_completion_tokens wins
    assert hot.batch_key() == ("sample", 0.7, 0.9, None)
    config = hot.generation_config(5)
    assert (config.max_new_tokens, config.do_sample, config.temperature, config.top_p) == (5, True, 0.7, 0.9)
    assert sampling(_request({"role": "user", "content": "x"}, temperature=0)).greedy
    assert sampling(_request({"role": "user", "content": "x"})).max_tokens is None


@pytest.mark.parametrize("stop", [["", "x"], ["a", "b", "c", "d", "e"]])
def test_stop_strings_are_checked(stop):
    with pytest.raises(RequestError, match="stop: up to 4 non-empty strings") as err:
        sampling(_request({"role": "user", "content": "x"}, stop=stop))
    assert err.value.param == "stop"
