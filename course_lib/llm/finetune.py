"""Fine-tuning setup: which of a model's parameters train, and the optimiser that trains them.

``trainable`` is ``"all"``, ``"top:N"`` (the top N transformer layers, the final norm and the heads) or ``"lora:R"``
(rank-R adapters through peft on every projection, :data:`LORA_TARGETS`); :func:`train_top_layers` applies it and
returns the parameters to optimise, :func:`adamw` builds the optimiser, :func:`check_finetune_config` validates what
SFT's, the reward model's and DPO's configs share. Loading the model is :mod:`course_lib.llm.models`'s job.
"""

from __future__ import annotations

from course_lib.utils.validation import check_float, check_int


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
        check_int(name, getattr(config, name), 1)
    check_float("learning_rate", config.learning_rate, "(0, 1)")
    check_float("weight_decay", config.weight_decay, ">= 0")
    check_float("max_grad_norm", config.max_grad_norm, "> 0")
    parse_trainable(config.trainable)
    check_mixed_precision(config.mixed_precision)


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
