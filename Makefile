# Two commands on a fresh machine with only Python:
#   make run    set up, then run the main job (the `quick` study and its report)
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
# This machine has a CPU wheel of torch 2.13.0 on local disk; GPU users: `make TORCH=torch setup`
# (or install your CUDA build into the venv first: the package accepts any torch >= 2.2).
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
OUT    ?= runs/quick

.PHONY: setup run test clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# The main job: the `quick` study (about 10 min on 2 CPU cores; re-running resumes it), then its
# report, which is written even when some runs failed; the exit status is the study's.
run: setup
	$(BIN)/reinitlab study quick --out $(OUT) || status=$$?; $(BIN)/reinitlab report $(OUT) && exit $${status:-0}

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
