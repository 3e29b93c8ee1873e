# grove-pipelines: `make run` starts the example agentic pipeline on this machine; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
TINY_MODEL := .cache/tiny-model
PORT ?= 8000

.PHONY: setup run test bench bench-routing tiny-model lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(PYTHON) $(VENV)
	touch $(STAMP)

tiny-model: $(STAMP)
	$(BIN)/grove-pipelines tiny-model $(TINY_MODEL)

run: $(STAMP) tiny-model
	$(BIN)/grove-pipelines run pipelines/agentic_rag.py --port $(PORT) --model $(TINY_MODEL)

# lint first: a tree that is not formatted or not typed fails before the long tests start
test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m tests.bench

# only the routing benchmark (two vLLM workers, both traces, every router 3 times)
bench-routing: $(STAMP)
	$(BIN)/python -m tests.bench routing

lint: $(STAMP)
	$(BIN)/ruff check grove_pipelines runtime tests pipelines
	$(BIN)/ruff format --check grove_pipelines runtime tests pipelines
	$(BIN)/mypy grove_pipelines runtime

clean:
	rm -rf $(VENV) .cache
