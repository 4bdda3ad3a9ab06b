# The two commands of the README. Both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv

.PHONY: serve test mutate

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

# Serve the demo gene API on http://localhost:8000 (embedded engine, no server to install).
serve: $(VENV)/.installed
	$(VENV)/bin/python index.py $(ARGS)

# Run the whole suite on every backend (embedded engine, loopback Elasticsearch), with coverage.
test: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/test.sh $(ARGS)

# Mutation testing of the core modules (hours; not part of `make test` nor CI): MODULES="options auth"
# for some, all by default. Resumes where a stopped run left off; the scores: docs/mutation.md.
mutate: $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet -e ".[mutation]"
	$(VENV)/bin/python scripts/mutate.py $(MODULES)
