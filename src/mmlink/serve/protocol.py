"""The OpenAI chat-completions request, validated (pydantic), and its translation into mmlink's conversation layout:
LLaVA-style turns whose ``<image>`` placeholders stand where the request's image parts were, plus the images.

Sampling: ``temperature`` 0 or absent decodes greedily (the models' own default, as serving engines use the
checkpoint's generation config); above 0 samples with ``top_p``. ``mmlink_aio`` (an extension field) optimizes the
last user instruction first (VisLingInstruct's AIO, `mmlink.aio`) and returns its steps as ``mmlink_aio``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transformers import GenerationConfig

from mmlink.models.processing import IMAGE_PLACEHOLDER
from mmlink.serve.media import MediaPolicy, RequestError, load_image


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields (user, logprobs, ...) mmlink does not use


class ImageURL(_Model):
    url: str
    detail: Optional[str] = None


class ContentPart(_Model):
    type: Literal["text", "image_url"]
    text: Optional[str] = None
    image_url: Optional[ImageURL] = None


class Message(_Model):
    role: Literal["system", "user", "assistant"]
    content: Union[str, list[ContentPart], None] = None


class StreamOptions(_Model):
    include_usage: bool = False


class ChatCompletionRequest(_Model):
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    temperature: Optional[float] = Field(default=None, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: Optional[int] = None
    stop: Union[str, list[str], None] = None
    n: int = Field(default=1, ge=1, le=8)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    mmlink_aio: bool = False


@dataclass
class Sampling:
    """One request's decoding settings (``n`` choices; ``stop`` strings end a choice and are not returned;
    ``max_tokens`` None: as many as the server's default and the context allow, `Engine.prepare` decides)."""

    max_tokens: Optional[int] = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: Optional[int] = None
    stop: tuple[str, ...] = ()
    n: int = 1

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def batch_key(self) -> tuple:
        """Requests batch together when they decode the same way (greedy, or the same sampling settings)."""
        return ("greedy",) if self.greedy else ("sample", self.temperature, self.top_p, self.seed)

    def generation_config(self, max_new_tokens: int) -> GenerationConfig:
        """How requests of this `batch_key` decode, for at most ``max_new_tokens``: greedily, or sampling with
        ``temperature`` and ``top_p``; the rest is the checkpoint's own generation config. (``seed`` is the
        engine's: a `GenerationConfig` has none.)"""
        if self.greedy:
            return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False)
        return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=self.temperature,
                                top_p=self.top_p)


@dataclass
class Conversation:
    turns: list[dict] = field(default_factory=list)  # [{"from": "human"|"gpt", "value": str}]
    images: list = field(default_factory=list)  # PIL images, in placeholder order


def parse_request(body: object) -> ChatCompletionRequest:
    """Validate a decoded JSON body; a `RequestError` names the first wrong field."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RequestError(f"{where}: {first['msg']}", param=where) from None


def to_conversation(request: ChatCompletionRequest, policy: MediaPolicy, limit_images: int) -> Conversation:
    """The request's messages as turns and images. System text goes before the first user turn (the models have no
    system role); consecutive messages of one role merge; the last message must be the user's."""
    count = sum(1 for m in request.messages if isinstance(m.content, list)
                for p in m.content if p.type == "image_url")
    if count > limit_images:
        raise RequestError(f"{count} images exceed the limit of {limit_images} per request (--limit-images)",
                           param="messages", code="too_many_images")
    conv, system = Conversation(), []
    for i, message in enumerate(request.messages):
        parts = [] if message.content is None else (
            [ContentPart(type="text", text=message.content)] if isinstance(message.content, str) else message.content)
        texts = []
        for j, part in enumerate(parts):
            param = f"messages.{i}.content.{j}"
            if part.type == "text":
                if part.text is None:
                    raise RequestError("a text part needs text", param=param)
                if IMAGE_PLACEHOLDER in part.text:
                    raise RequestError(f"text may not contain {IMAGE_PLACEHOLDER}: images are image_url parts",
                                       param=param)
                texts.append(part.text)
            else:
                if message.role != "user":
                    raise RequestError("only user messages may carry images", param=param)
                if part.image_url is None:
                    raise RequestError("an image_url part needs image_url.url", param=param)
                conv.images.append(load_image(part.image_url.url, f"{param}.image_url", policy))
                texts.append(IMAGE_PLACEHOLDER)
        text = "\n".join(texts)
        if message.role == "system":
            system.append(text)
            continue
        role = "human" if message.role == "user" else "gpt"
        if not conv.turns and role == "gpt":
            raise RequestError("the conversation must start with a user message", param=f"messages.{i}")
        if not conv.turns and system:
            text = "\n".join(system + [text])
        if conv.turns and conv.turns[-1]["from"] == role:
            conv.turns[-1]["value"] += "\n" + text
        else:
            conv.turns.append({"from": role, "value": text})
    if not conv.turns or conv.turns[-1]["from"] != "human":
        raise RequestError("the last message must be the user's", param="messages")
    if not conv.images:
        raise RequestError("the model needs at least one image (an image_url part)", param="messages",
                           code="no_image")
    return conv


def sampling(request: ChatCompletionRequest) -> Sampling:
    stop = () if request.stop is None else (request.stop,) if isinstance(request.stop, str) else tuple(request.stop)
    if any(not s for s in stop) or len(stop) > 4:
        raise RequestError("stop: up to 4 non-empty strings", param="stop")
    return Sampling(max_tokens=request.max_completion_tokens or request.max_tokens,
                    temperature=request.temperature or 0.0, top_p=request.top_p, seed=request.seed, stop=stop,
                    n=request.n)


__all__ = ["ChatCompletionRequest", "Conversation", "Sampling", "parse_request", "sampling",
           "to_conversation"]
