# The two commands of the README: `make up` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install up test bench topics clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools tells every editable install to "be careful with folders in your working directory
	@# with the same name as your package": here those folders are the package. Only that notice is
	@# silenced (its 'compat' mode, tried before, now warns that it is going away).
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/creative-sync up

test: $(STAMP)
	@bash .ci/browser
	$(BIN)/python -m pytest -n 2 --dist loadfile -m 'not alone'
	$(BIN)/python -m pytest -m alone

bench: $(STAMP)
	$(BIN)/creative-sync bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
