"""course_lib.llm.scale and `course-kit scale`: the course's data and rewards through TRL's trainers.

Each TRL path runs 2 optimiser steps on the tiny model on the CPU: the smoke test of lesson 16's
"beyond one machine" road. What runs on many GPUs is TRL's and accelerate's code, driven by the
configs in configs/accelerate/, which are checked here only for being valid accelerate configs.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("trl")

from conftest import ROOT  # noqa: E402

from course_lib.data.preferences import PreferencePair  # noqa: E402
from course_lib.llm.generation import chat_prompt  # noqa: E402
from course_lib.llm.models import tiny_model  # noqa: E402
from course_lib.llm.scale import (  # noqa: E402
    preference_dataset,
    prompt_dataset,
    reward_model_from,
    trl_reward_function,
    trl_trainer,
)


@pytest.fixture(scope="module")
def tok():
    return tiny_model()[1]


def _pairs(tok, n=8):
    prompts = [chat_prompt(tok, f"Say something about topic {i}.") for i in range(n)]
    return [PreferencePair(p, "A lovely, wonderful day." + tok.eos_token, "A bad, awful day." + tok.eos_token)
            for p in prompts]


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _changed(model, before):
    return [n for n, p in model.named_parameters() if n in before and not torch.equal(p.detach(), before[n])]


def _losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.parametrize("algorithm", ["reward", "dpo"])
def test_preference_trainers_run_two_steps_and_update(tmp_path, tok, algorithm):
    lm = tiny_model(seed=1, tokenizer=tok)[0]
    model = reward_model_from(lm) if algorithm == "reward" else lm
    trainer = trl_trainer(algorithm, model, tok, str(tmp_path), pairs=_pairs(tok), steps=2, batch_size=4,
                          learning_rate=1e-3)
    before = _snapshot(trainer.model)
    trainer.train()
    assert trainer.state.global_step == 2
    losses = _losses(trainer)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert _changed(trainer.model, before), "no trained parameter moved in 2 steps"
    if algorithm == "dpo":  # the first step's policy is the reference: the DPO loss is ln 2 there
        assert losses[0] == pytest.approx(math.log(2), abs=1e-4)


def test_grpo_trainer_runs_two_steps_with_a_course_reward(tmp_path, tok):
    lm = tiny_model(seed=1, tokenizer=tok)[0]
    seen = []

    def reward_fn(prompts, replies):  # a course reward function: (prompts, replies) -> floats
        seen.append(len(replies))
        return [float(len(r)) / 10 for r in replies]

    prompts = [chat_prompt(tok, f"Count to {i}.") for i in range(4)]
    trainer = trl_trainer("grpo", lm, tok, str(tmp_path), prompts=prompts, reward_fn=reward_fn, steps=2,
                          batch_size=4, num_generations=4, max_completion_length=8, learning_rate=1e-3)
    before = _snapshot(trainer.model)
    trainer.train()
    assert trainer.state.global_step == 2
    assert seen and all(n == 4 for n in seen), f"expected groups of 4 completions per reward call, got {seen}"
    assert _changed(trainer.model, before)


def test_lora_trains_only_adapters(tmp_path, tok):
    lm = tiny_model(seed=1, tokenizer=tok)[0]
    trainer = trl_trainer("dpo", lm, tok, str(tmp_path), pairs=_pairs(tok), steps=2, batch_size=4,
                          learning_rate=1e-2, lora_rank=2)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable), trainable[:5]
    before = _snapshot(trainer.model)
    trainer.train()
    assert _changed(trainer.model, before)


def test_datasets_use_trl_columns(tok):
    pairs = _pairs(tok, 3)
    data = preference_dataset(pairs)
    assert data.column_names == ["prompt", "chosen", "rejected"]
    assert data[1] == {"prompt": pairs[1].prompt, "chosen": pairs[1].chosen, "rejected": pairs[1].rejected}
    assert prompt_dataset(["a", "b"]).column_names == ["prompt"]


def test_reward_function_adapter():
    f = trl_reward_function(lambda prompts, replies: [len(r) for r in replies], name="length")
    assert f.__name__ == "length"
    assert f(["p", "q"], ["ab", "c"], answer=["x", "y"]) == [2.0, 1.0]  # extra dataset columns are ignored
    with pytest.raises(FloatingPointError, match="completion 1"):
        trl_reward_function(lambda p, r: [0.0, float("nan")])(["p", "q"], ["a", "b"])
    with pytest.raises(ValueError, match="1 scores for 2 completions"):
        trl_reward_function(lambda p, r: [0.0])(["p", "q"], ["a", "b"])


@pytest.mark.parametrize("kwargs, match", [
    ({"algorithm": "ppo"}, "algorithm: expected one of"),
    ({"steps": 0}, "steps: expected an int >= 1, got 0"),
    ({"learning_rate": 2.0}, r"learning_rate: expected a float in \(0, 1\), got 2.0"),
    ({"pairs": None}, "pairs: expected preference pairs"),
    ({"algorithm": "grpo"}, "prompts, reward_fn: expected both"),
    ({"algorithm": "grpo", "prompts": ["p"], "reward_fn": len, "batch_size": 6}, "multiple of num_generations"),
])
def test_bad_arguments_are_named(tmp_path, tok, kwargs, match):
    args = {"algorithm": "dpo", "pairs": _pairs(tok, 2), **kwargs}
    with pytest.raises(ValueError, match=match):
        trl_trainer(args.pop("algorithm"), tiny_model()[0], tok, str(tmp_path), **args)


def test_preference_dataset_rejects_other_records():
    with pytest.raises(ValueError, match="pairs: expected a non-empty list of PreferencePair"):
        preference_dataset([{"prompt": "p"}])


@pytest.mark.parametrize("name, kind", [("multi_gpu", "MULTI_GPU"), ("deepspeed_zero2", "DEEPSPEED"),
                                        ("fsdp", "FSDP")])
def test_accelerate_configs_are_valid(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(ROOT / "configs" / "accelerate" / f"{name}.yaml")
    assert config.distributed_type.value == kind


def test_cli_smoke_run(tmp_path, capsys):
    from course_lib.kit.cli import main

    assert main(["scale", "dpo", "--tiny", "--pairs", str(_write_pairs(tmp_path)), "--steps", "2",
                 "--batch-size", "2", "--lr", "1e-3", "--out", str(tmp_path / "out"), "--save"]) == 0
    out = capsys.readouterr().out
    assert "dpo: 2 steps, loss per step" in out
    assert (tmp_path / "out" / "config.json").is_file()


def _write_pairs(tmp_path):
    from course_lib.data.preferences import save_pairs

    path = tmp_path / "pairs.jsonl"
    save_pairs(_pairs(tiny_model()[1], 4), path)
    return path


def test_two_processes_under_accelerate_launch_train_different_shards_to_equal_weights(tmp_path):
    """The multi-GPU entry point, `accelerate launch -m course_lib.kit.scale`, with 2 CPU processes (gloo)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from course_lib.data.preferences import PreferencePair, save_pairs

    save_pairs([PreferencePair(f"prompt number {i}", f" good {i}", f" bad {i}") for i in range(16)],
               tmp_path / "pairs.jsonl")
    launcher = Path(sys.executable).parent / "accelerate"
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "course_lib.kit.scale", "dpo", "--tiny",
               "--pairs", "pairs.jsonl", "--steps", "2", "--batch-size", "2", "--lr", "1e-3", "--report", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true",
           "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("dpo: 2 steps, loss per step") == 2
    ranks = [json.loads((tmp_path / f"ddp.rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world_size"], r["steps"]) for r in ranks] == [(0, 2, 2), (1, 2, 2)]
    assert all(r["distributed_type"] == "MULTI_CPU" for r in ranks), ranks[0]["distributed_type"]
    shards = [set(r["examples"]) for r in ranks]
    assert shards[0] and shards[1] and not shards[0] & shards[1]  # each rank trained on its own examples
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]  # gradients all-reduced: one model
    assert ranks[0]["weights_sha256"] != ranks[0]["initial_weights_sha256"]  # and it trained
