"""`mmlink.runtime`: ``--dtype auto`` picks bfloat16 only where the hardware computes it natively."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from mmlink.runtime import (
    DTYPE_NAMES,
    MIXED_PRECISION_NAMES,
    Capabilities,
    DtypeChoice,
    choose_dtype,
    choose_mixed_precision,
)

AVX2 = Capabilities(device="cpu", cpu_capability="AVX2", avx512_bf16=False, amx=False)
AVX512 = Capabilities(device="cpu", cpu_capability="AVX512", avx512_bf16=False, amx=False)
AVX512_BF16 = Capabilities(device="cpu", cpu_capability="AVX512", avx512_bf16=True, amx=False)
AMX = Capabilities(device="cpu", cpu_capability="AVX512", avx512_bf16=True, amx=True)
AMX_ONLY = Capabilities(device="cpu", cpu_capability="AVX512", avx512_bf16=False, amx=True)
H100 = Capabilities(device="cuda:0", cpu_capability="AVX2", avx512_bf16=False, amx=False, cuda_bf16=True,
                    cuda_name="NVIDIA H100")
T4 = Capabilities(device="cuda", cpu_capability="AVX512", avx512_bf16=True, amx=False, cuda_bf16=False,
                  cuda_name="Tesla T4")


@pytest.mark.parametrize("caps, want", [
    (AVX2, "float32"),  # no bf16 units: emulated, 4-100x slower
    (AVX512, "float32"),  # AVX512 alone says nothing about bf16
    (AVX512_BF16, "bfloat16"),
    (AMX, "bfloat16"),
    (AMX_ONLY, "bfloat16"),
    (H100, "bfloat16"),
    # a GPU without bf16: float32, not float16 -- fp16's 5-bit exponent overflows on activations of models trained in
    # bf16/fp32, and float32 is the exact reference; float16 stays an explicit opt-in
    (T4, "float32"),
], ids=["avx2", "avx512", "avx512-bf16", "amx", "amx-only", "cuda-bf16", "cuda-no-bf16"])
def test_auto_picks_bf16_only_where_native(caps, want):
    choice = choose_dtype("auto", capabilities=caps)
    assert choice.name == want and choice.requested == "auto" and choice.capabilities is caps
    assert choice.dtype == getattr(torch, want)
    assert choice.reason.startswith("auto: ") and f"-> {want}" in choice.reason


def test_auto_reasons_are_readable():
    assert choose_dtype(capabilities=AVX2).reason == \
        "auto: CPU (AVX2) has no native bf16 (no AVX512-BF16/AMX) -> float32"
    assert choose_dtype(capabilities=AVX512).reason == \
        "auto: CPU (AVX512) has no native bf16 (no AVX512-BF16/AMX) -> float32"
    assert choose_dtype(capabilities=AVX512_BF16).reason == \
        "auto: CPU (AVX512) has native bf16 (AVX512-BF16) -> bfloat16"
    assert "AVX512-BF16 and AMX" in choose_dtype(capabilities=AMX).reason
    assert choose_dtype(capabilities=H100).reason == "auto: CUDA device NVIDIA H100 has native bf16 -> bfloat16"
    t4 = choose_dtype(capabilities=T4).reason
    assert t4.startswith("auto: CUDA device Tesla T4 has no native bf16 -> float32") and "float16 is never" in t4


@pytest.mark.parametrize("name", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("caps", [AVX2, AMX, H100, T4], ids=["avx2", "amx", "cuda-bf16", "cuda-no-bf16"])
def test_an_explicit_dtype_is_honoured(name, caps):
    choice = choose_dtype(name, capabilities=caps)
    assert choice.name == name and choice.requested == name and choice.dtype == getattr(torch, name)
    assert choice.reason.startswith(f"requested {name}")


def test_explicit_requests_say_when_they_are_slow():
    assert choose_dtype("float32", capabilities=AVX2).reason == "requested float32"
    slow = choose_dtype("bfloat16", capabilities=AVX2).reason
    assert "no native bf16" in slow and "emulated" in slow and "slower" in slow
    assert "emulated" not in choose_dtype("bfloat16", capabilities=AMX).reason
    assert "emulated" in choose_dtype("bfloat16", capabilities=T4).reason
    assert "emulates float16" in choose_dtype("float16", capabilities=AMX).reason  # allowed on CPU, with a warning
    assert choose_dtype("float16", capabilities=H100).reason == "requested float16"


@pytest.mark.parametrize("bad", ["fp32", "bf16", "Float32", "", "float64", None, torch.float32])
def test_unknown_names_are_refused_with_the_valid_list(bad):
    with pytest.raises(ValueError) as err:
        choose_dtype(bad, capabilities=AVX2)
    assert "valid: auto, float32, bfloat16, float16" in str(err.value)


def test_dtype_names():
    assert DTYPE_NAMES == ("auto", "float32", "bfloat16", "float16")
    assert MIXED_PRECISION_NAMES == ("auto", "no", "bf16", "fp16")


@pytest.mark.parametrize("caps, want", [(AVX2, "no"), (AVX512, "no"), (AVX512_BF16, "bf16"), (AMX, "bf16"),
                                        (H100, "bf16"), (T4, "no")])
def test_auto_autocast(caps, want):
    choice = choose_mixed_precision("auto", capabilities=caps)
    assert choice.mixed_precision == want and choice.requested == "auto"
    assert ("-> bf16 autocast" if want == "bf16" else "-> no autocast (float32)") in choice.reason


def test_explicit_autocast_is_honoured():
    for name, dtype in (("no", "float32"), ("bf16", "bfloat16"), ("fp16", "float16")):
        choice = choose_mixed_precision(name, capabilities=AVX2)
        assert choice.mixed_precision == name and choice.name == dtype and choice.requested == name
    assert "emulated" in choose_mixed_precision("bf16", capabilities=AVX2).reason
    with pytest.raises(ValueError, match="valid: auto, no, bf16, fp16"):
        choose_mixed_precision("bfloat16", capabilities=AVX2)


def test_to_dict_is_json_metadata():
    d = choose_dtype("auto", capabilities=T4).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d == {"name": "float32", "requested": "auto", "reason": d["reason"], "device": "cuda",
                 "cpu_capability": "AVX512", "avx512_bf16": True, "amx": False, "cuda_bf16": False,
                 "cuda_name": "Tesla T4"}


def test_choices_are_frozen():
    choice = choose_dtype(capabilities=AVX2)
    assert isinstance(choice, DtypeChoice)
    with pytest.raises(Exception):
        choice.name = "bfloat16"  # type: ignore[misc]
    with pytest.raises(Exception):
        AVX2.amx = True  # type: ignore[misc]


def test_detect_on_this_machine_is_consistent():
    caps = Capabilities.detect()
    assert caps.device == "cpu" and caps.cuda_bf16 is False and caps.cuda_name is None
    assert isinstance(caps.cpu_capability, str) and caps.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert isinstance(caps.avx512_bf16, bool) and isinstance(caps.amx, bool)
    assert caps.avx512_bf16 == torch.cpu._is_avx512_bf16_supported()
    assert caps.amx == torch.cpu._is_amx_tile_supported()
    choice = choose_dtype()  # auto, on this machine
    assert choice.capabilities == caps
    assert choice.name == ("bfloat16" if caps.avx512_bf16 or caps.amx else "float32")
    assert choose_dtype("auto", "cpu").name == choice.name


def test_detect_refuses_cuda_without_a_gpu():
    if torch.cuda.is_available():
        caps = Capabilities.detect("cuda")
        assert isinstance(caps.cuda_bf16, bool) and isinstance(caps.cuda_name, str)
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            Capabilities.detect("cuda:0")


def test_import_is_light():
    code = "import sys, mmlink.runtime; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_resolve_device_checks_the_name_and_the_machine(monkeypatch):
    import torch

    from mmlink.runtime import resolve_device

    assert resolve_device("cpu") == "cpu" and resolve_device(" CPU ") == "cpu"
    with pytest.raises(ValueError, match="--device 'gpu': use cpu, cuda or cuda:N"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == "cpu"
    with pytest.raises(ValueError, match="--device cuda: CUDA is not available on this machine"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device(None) == "cuda" and resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(ValueError, match="has 1 CUDA device"):
        resolve_device("cuda:1")
