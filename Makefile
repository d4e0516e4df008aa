# Two commands on a fresh machine with only Python:
#   make run        set up, then run the main job (the `quick` study and its report)
#   make test       set up with the test extras, then run the test suite
#   make test-fast  the same without the tests marked slow (end-to-end runs of real commands)
#   make docs       build the documentation site (docs/, mkdocs.yml) into site/, strictly
PYTHON ?= python3
VENV   ?= .venv
# This machine has a CPU wheel of torch 2.13.0 on local disk; GPU users: `make TORCH=torch setup`
# (or install your CUDA build into the venv first: the package accepts any torch >= 2.2).
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
OUT    ?= runs/quick

.PHONY: setup setup-test setup-docs run test test-fast lint docs mutation clean
setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test
setup-docs: $(VENV)/.installed-docs

# The main job needs the package alone; Ray (~240 MB) and the test tools come with setup-test.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[docs]"
	touch $@

# The main job: the `quick` study (about 10 min on 2 CPU cores; re-running resumes it), then its
# report, which is written even when some runs failed; the terminal gets the Answer and the path of
# report.html, the rest stays in the files. The exit status is the study's.
run: setup
	$(BIN)/reinitlab study quick --out $(OUT) || status=$$?; $(BIN)/reinitlab report $(OUT) --answer-only && exit $${status:-0}

test: setup-test
	$(BIN)/python -m pytest -q

test-fast: setup-test
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup-test
	$(BIN)/ruff check .

# The site from docs/ (mkdocs.yml); --strict fails on a broken link, anchor or API reference. The
# generated parts of the pages are checked by the tests (scripts/gen_docs.py --check). Never --quiet:
# it hides the warnings that --strict counts, and a broken link would pass.
docs: setup-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict


# Mutation testing of the modules every result depends on (pyproject's [tool.mutmut]; docs/mutation.md):
# about 2.5 hours on 2 cores, so not part of CI. Re-running resumes; the score per module is printed last.
mutation: $(VENV)/.installed-mutation
	$(BIN)/mutmut run || true
	$(BIN)/python scripts/mutation_scores.py

$(VENV)/.installed-mutation: $(VENV)/.installed-test
	$(BIN)/python -m pip install -q -e ".[test,mutation]"
	touch $@

clean:
	rm -rf $(VENV) runs site .pytest_cache mutants
