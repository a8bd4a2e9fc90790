"""One pluggable text-LLM backend for every text job in mmlink: data synthesis, judging, CaD summaries.

Three backends, chosen by a spec string (`make_backend`):

==========================  ==================================================================================
``template``                `TemplateLLM`: no model. It answers a versioned `Prompt` with the deterministic
                            function the prompt's owner attached to it (`Prompt.template`); the world's default
                            and the tests' backend.
``local`` / ``local:PATH``  `LocalLLM`: a local transformers causal LM, greedy decoding. Without a path it is the
                            ``mini`` presets' SmolLM2-135M-Instruct (a *weak* model: ``weak=True``).
``openai:MODEL@URL``        `OpenAILLM`: any OpenAI-compatible ``/chat/completions`` server (vLLM, TGI, llama.cpp,
``openai:URL``              Ollama, OpenAI) through the standard library; ``openai:URL`` takes the model name from
                            `TextLLMSettings.model`.
==========================  ==================================================================================

Every backend has one method, ``complete(prompt, system=None) -> str``, and `TextLLM.ask`, which renders a `Prompt`
and completes it (the template backend answers from the prompt's fields instead). ``name`` is a stable identifier of
the model (part of cache keys and reports); ``weak`` marks a model too small for its text or ratings to mean much.
A backend that cannot answer (HTTP error, unreachable server, malformed reply) raises `TextLLMError`.

Prompts live in versioned files inside the package (``<package>/prompts/<name>_vN.txt``, declared as package data):
change the wording, add a new file with the next version, so cached answers and reported numbers of different
prompts never mix. `load_prompt` reads one.

Importing this module is cheap: torch and transformers are imported by `LocalLLM` on first use only.
"""

from __future__ import annotations

import os
import string
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, Callable, Sequence

from mmlink.openai_compat import EndpointError, chat_completion
from mmlink.registry import Registry
from mmlink.settings import check_fields, setting

MINI_LLM = "mini:SmolLM2-135M-Instruct"  # the default local model: the `mini` presets' (frozen) LLM
SPEC_FORMS = "template, local, local:PATH, openai:MODEL@URL, openai:URL (with a model name)"


class TextLLMError(RuntimeError):
    """A backend produced no answer (network, HTTP status, malformed reply, no template for a prompt)."""


# --------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class Prompt:
    """A versioned prompt: ``text`` with ``{field}`` placeholders, read from ``<package>/prompts/<name>.txt``.

    ``template`` is the deterministic answer the template backend gives (``template(**fields) -> str``); the owner
    of the prompt attaches it, so the offline answer lives next to the prompt it stands in for.
    """

    name: str
    text: str
    template: Callable[..., str] | None = field(default=None, compare=False)

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(f for _, f, _, _ in string.Formatter().parse(self.text) if f)

    def render(self, **fields: Any) -> str:
        """The prompt with every field filled; a missing or unknown field is an error (a caller bug)."""
        if set(fields) != self.fields:
            missing, extra = sorted(self.fields - set(fields)), sorted(set(fields) - self.fields)
            raise ValueError(f"prompt {self.name}: missing fields {missing}, unknown fields {extra}")
        return self.text.format(**fields)


def load_prompt(package: str, name: str, template: Callable[..., str] | None = None) -> Prompt:
    """The prompt ``<package>/prompts/<name>.txt`` (UTF-8; one final newline, which editors add, is dropped)."""
    path = resources.files(package).joinpath("prompts", f"{name}.txt")
    text = path.read_text(encoding="utf-8")
    return Prompt(name, text[:-1] if text.endswith("\n") else text, template)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TextLLMSettings:
    """Generation settings shared by the backends (each uses those that apply to it).

    ``max_new_tokens`` bounds the answer (``max_tokens`` for a server); ``temperature`` 0 is greedy;
    ``model`` names the server's model for the ``openai:URL`` form; ``api_key_env`` is the environment variable the
    key is read from at each call (unset: no ``Authorization`` header, as local servers need none).
    """

    max_new_tokens: int = setting(64, min=1, help="answer length limit (max_tokens for a server)")
    temperature: float = setting(0.0, min=0, max=2, help="0: greedy")
    timeout: float = setting(60.0, above=0, help="seconds a server may take per request")
    api_key_env: str = setting("OPENAI_API_KEY", help="environment variable holding the server's API key")
    model: str | None = setting(None, help="the server's model name, for the openai:URL form")
    device: str = setting("cpu", help="torch device of a local model")

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.api_key_env:
            raise ValueError("api_key_env must name an environment variable")


# --------------------------------------------------------------------------- backends


class TextLLM(ABC):
    """A text LLM: ``complete`` is the one method a backend must have."""

    name: str = "text-llm"
    weak: bool = False
    spec: str | None = None  # the `make_backend` spec that builds this backend again, where there is one
    # True when answers are computed by code from the prompt's fields: nothing worth caching, and a cache would keep
    # stale answers when that code changes.
    deterministic: bool = False

    @abstractmethod
    def complete(self, prompt: str, system: str | None = None) -> str:
        """The model's reply to one user message (after an optional system message); `TextLLMError` if none."""

    def ask(self, prompt: Prompt, system: str | None = None, **fields: Any) -> str:
        """Render ``prompt`` with ``fields`` and complete it."""
        return self.complete(prompt.render(**fields), system=system)

    def complete_many(self, prompts: Sequence[str], system: str | None = None) -> list[str]:
        """The replies to several independent user messages; a backend that can batch them overrides this."""
        return [self.complete(p, system=system) for p in prompts]


class TemplateLLM(TextLLM):
    """No model: each `Prompt` is answered by its own deterministic ``template`` function."""

    name = spec = "template"
    weak = True
    deterministic = True

    def complete(self, prompt, system=None):
        raise TextLLMError("the template backend writes no free text; it answers mmlink's own versioned prompts only "
                           f"(use a model: {SPEC_FORMS})")

    def ask(self, prompt, system=None, **fields):
        if prompt.template is None:
            raise TextLLMError(f"prompt {prompt.name} has no template answer; use a model ({SPEC_FORMS})")
        prompt.render(**fields)  # the same field check as a model backend gets
        return prompt.template(**fields)


class LocalLLM(TextLLM):
    """A local transformers causal LM, greedy decoding, through the tokenizer's chat template when it has one.

    ``path=None`` is the ``mini`` presets' SmolLM2-135M-Instruct (``weak=True``); a path is a checkpoint directory
    (or a hub id already in the local cache: nothing is downloaded) loaded with ``AutoModelForCausalLM``. ``model``
    and ``tokenizer`` objects may be given instead (tests, or a model already in memory). Nothing is loaded, and
    torch is not imported, until the first `complete`.
    """

    def __init__(self, path: str | os.PathLike | None = None, max_new_tokens: int = 64, device: str = "cpu",
                 model: Any = None, tokenizer: Any = None) -> None:
        if (model is None) != (tokenizer is None):
            raise ValueError("give both model and tokenizer, or neither")
        if model is not None and path is not None:
            raise ValueError("give a path or a model, not both")
        self.path = None if path is None else os.fspath(path).rstrip("/\\")
        self.max_new_tokens, self.device = max_new_tokens, device
        self._model, self._tokenizer = model, tokenizer
        self.weak = self.path is None and model is None
        if model is not None:
            self.name = f"local:{getattr(getattr(model, 'config', None), '_name_or_path', '') or type(model).__name__}"
        else:
            self.name = f"local:{MINI_LLM}" if self.path is None else f"local:{self.path}"
            self.spec = "local" if self.path is None else self.name

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        if self.path is None:
            from mmlink.models import load

            # Only the LLM is used, and mmlink's training keeps it frozen in every `mini` variant: `mini-untrained`
            # holds the same SmolLM2-135M-Instruct weights and loads without the trained deltas.
            model, processor = load("mini-untrained", sam_mode="none")
            llm, tokenizer = model.language_model, processor.tokenizer
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            llm = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self._model, self._tokenizer = llm.to(self.device).eval(), tokenizer

    def _token_ids(self, prompt: str, system: str | None) -> list[int]:
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}]
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return tok(text, add_special_tokens=False)["input_ids"]  # the template has the specials
        # a plain LM continues after a newline more readily than mid-line
        return tok((system + "\n\n" if system else "") + prompt + "\n")["input_ids"]

    def complete(self, prompt, system=None):
        return self.complete_many([prompt], system=system)[0]

    def complete_many(self, prompts, system=None):
        """Greedy replies to all ``prompts`` in one batched `generate` (left-padded by hand: the tokenizer, which
        may be a model's own, is never changed)."""
        import torch

        if not prompts:
            return []
        if self._model is None:
            self._load()
        tok = self._tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids = [self._token_ids(p, system) for p in prompts]
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, width - len(x):], mask[row, width - len(x):] = torch.tensor(x), 1
        with torch.inference_mode():
            out = self._model.generate(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                       do_sample=False, max_new_tokens=self.max_new_tokens, pad_token_id=pad)
        return [tok.decode(row[width:], skip_special_tokens=True).strip() for row in out]


class OpenAILLM(TextLLM):
    """An OpenAI-compatible chat-completions server, standard library only.

    ``url`` is the API base as the OpenAI client takes it (``https://api.openai.com/v1``,
    ``http://localhost:8000/v1``); requests go to ``{url}/chat/completions``. A bare ``scheme://host[:port]`` gets
    ``/v1``, where vLLM, llama.cpp and Ollama serve it.
    """

    def __init__(self, url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 temperature: float = 0.0, max_tokens: int = 64) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the OpenAI-compatible URL must start with http:// or https://, got {url!r}")
        if not model:
            raise ValueError("an OpenAI-compatible backend needs a model name (openai:MODEL@URL)")
        base = url.rstrip("/")
        if base.count("/") == 2:  # scheme://host[:port] with no path
            base += "/v1"
        self.url, self.model = base, model
        self.api_key_env, self.timeout = api_key_env, timeout
        self.temperature, self.max_tokens = temperature, max_tokens
        self.name = self.spec = f"openai:{model}@{self.url}"  # the normalised base: "…/v1", "…/v1/" share a cache

    @property
    def endpoint(self) -> str:
        return f"{self.url}/chat/completions"

    def complete(self, prompt, system=None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens}
        try:
            return chat_completion(self.endpoint, body, self.api_key_env, self.timeout)
        except EndpointError as e:
            if e.kind == "http":
                message = f"{self.endpoint} returned HTTP {e.status} {e.reason}: {e.detail[:300]}"
            elif e.kind == "unreachable":
                message = f"{self.endpoint} unreachable: {e.detail}"
            else:
                message = f"{self.endpoint} sent no chat completion: {e.detail}"
            raise TextLLMError(message) from e


# --------------------------------------------------------------------------- specs

# kind -> factory(argument after "kind:" or None, settings)
BACKENDS: Registry[Callable[[str | None, TextLLMSettings], TextLLM]] = Registry("text-LLM backend")


@BACKENDS.register("template")
def _template(arg: str | None, settings: TextLLMSettings) -> TextLLM:
    if arg:
        raise ValueError(f"the template backend takes no argument, got 'template:{arg}'")
    return TemplateLLM()


@BACKENDS.register("local")
def _local(arg: str | None, settings: TextLLMSettings) -> TextLLM:
    return LocalLLM(arg or None, max_new_tokens=settings.max_new_tokens, device=settings.device)


@BACKENDS.register("openai")
def _openai(arg: str | None, settings: TextLLMSettings) -> TextLLM:
    if not arg:
        raise ValueError("openai needs a server: openai:MODEL@URL, e.g. openai:qwen2.5-7b@http://localhost:8000/v1")
    if arg.startswith(("http://", "https://")):
        url, model = arg, settings.model
        if not model:
            raise ValueError(f"openai:{arg} needs a model name: write openai:MODEL@{arg} (or give the model)")
    else:
        model, at, url = arg.partition("@")
        if not at or not model:
            raise ValueError(f"expected openai:MODEL@URL or openai:URL, got 'openai:{arg}'")
        if settings.model and settings.model != model:
            raise ValueError(f"two model names: {model!r} in the spec and {settings.model!r} in the settings")
    return OpenAILLM(url, model, api_key_env=settings.api_key_env, timeout=settings.timeout,
                     temperature=settings.temperature, max_tokens=settings.max_new_tokens)


def make_backend(spec: str | TextLLM, settings: TextLLMSettings | None = None, **overrides: Any) -> TextLLM:
    """A backend from a spec string (see the module docstring), or ``spec`` itself when it already is one.

    ``overrides`` replace fields of ``settings`` (``make_backend("local", max_new_tokens=32)``).
    """
    if isinstance(spec, TextLLM):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a text-LLM backend spec must be one of: {SPEC_FORMS}; got {spec!r}")
    settings = settings or TextLLMSettings()
    if overrides:
        settings = replace(settings, **overrides)
    kind, _, arg = spec.strip().partition(":")
    if kind not in BACKENDS:
        raise ValueError(f"unknown text-LLM backend {spec!r}; valid: {SPEC_FORMS}")
    return BACKENDS.get(kind)(arg or None, settings)


__all__ = [
    "BACKENDS", "MINI_LLM", "SPEC_FORMS", "LocalLLM", "OpenAILLM", "Prompt", "TemplateLLM", "TextLLM",
    "TextLLMError", "TextLLMSettings", "load_prompt", "make_backend",
]  # fmt: skip
