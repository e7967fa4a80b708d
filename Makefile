# The README's two commands: `make suite` (main job) and `make test` (what CI runs); `make lint` (CI runs it first).
VENV := .venv
PY := $(VENV)/bin/python
DATA := $(wildcard $(abspath ../shared/data))
ifneq ($(DATA),)
export NICROBUST_DATA ?= $(DATA)
endif

.PHONY: install suite test lint tools report
install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Extra pytest arguments, e.g. make suite ARGS="--nicrobust-compare=last-release.json"
ARGS ?=
suite: install
	$(PY) -m pytest suites/default.suite.toml -n auto --alluredir allure-results --clean-alluredir --nicrobust-json results.json $(ARGS)

test: install
	$(PY) -m pytest tests -n 2

# ruff (lint + format check) and mypy on the typed rooms, as configured in pyproject.toml.
LINTED := pytest_nicrobust tests benchmarks scripts examples
lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

# Tools for the HTML report (and its test): Java, the Allure command line, headless Chromium.
tools:
	command -v java >/dev/null || { apt-get update && apt-get install -y --no-install-recommends default-jre-headless; }
	command -v chromium >/dev/null || { apt-get update && apt-get install -y --no-install-recommends chromium; }
	[ -x .tools/node_modules/.bin/allure ] || npm install --prefix .tools allure-commandline@2.46.1

# Carries the previous report's history into the new one, so Allure's trend widgets fill up run by run.
report: tools
	if [ -d allure-report/history ]; then mkdir -p allure-results/history && cp -r allure-report/history/. allure-results/history/; fi
	.tools/node_modules/.bin/allure generate allure-results -o allure-report --clean
