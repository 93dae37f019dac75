# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# TORCH pins the PyTorch requirement; override it for another build, e.g. `make demo TORCH=torch==2.5.1`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -c $(VENV)/constraints.txt "$(TORCH)" -e ".[test]"
	touch $(STAMP)

demo: install
	$(BIN)/ganslim demo

test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider

clean:
	rm -rf $(VENV) runs demo_out
