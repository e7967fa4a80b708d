# The README's two commands: `make suite` (main job) and `make test` (what CI runs).
VENV := .venv
PY := $(VENV)/bin/python
DATA := $(wildcard $(abspath ../shared/data))
ifneq ($(DATA),)
export NICROBUST_DATA ?= $(DATA)
endif

.PHONY: install suite test
install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

suite: install
	$(PY) -m pytest suites/default.toml -n auto --alluredir allure-results --nicrobust-json results.json

test: install
	$(PY) -m pytest tests -n 2
