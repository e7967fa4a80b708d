# The README's two commands: `make suite` (main job) and `make test` (what CI runs).
VENV := .venv
PY := $(VENV)/bin/python
DATA := $(wildcard $(abspath ../shared/data))
ifneq ($(DATA),)
export NICROBUST_DATA ?= $(DATA)
endif

.PHONY: install suite test tools report
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

# Tools for the HTML report (and its test): Java, the Allure command line, headless Chromium.
tools:
	command -v java >/dev/null || { apt-get update && apt-get install -y --no-install-recommends default-jre-headless; }
	command -v chromium >/dev/null || { apt-get update && apt-get install -y --no-install-recommends chromium; }
	[ -x .tools/node_modules/.bin/allure ] || npm install --prefix .tools allure-commandline@2.46.1

report: tools
	.tools/node_modules/.bin/allure generate allure-results -o allure-report --clean
