# The README's two commands. Everything else lives in the `gridsvc` CLI.
#   make run   install, start the embedded PostGIS, migrate, load Lingfeng, serve on :8000
#   make test  the same set-up, then the whole suite against a separate database
# DATABASE_URL=postgresql://... uses an existing PostGIS server instead.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install db clean

run: db
	$(BIN)/gridsvc migrate
	$(BIN)/gridsvc seed lingfeng
	$(BIN)/gridsvc serve

test: db
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

db: $(STAMP)
	$(BIN)/gridsvc db start

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  else echo "Python's venv module is missing: install python3-venv (sudo apt-get install python3-venv)"; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	-$(BIN)/gridsvc db stop
	rm -rf $(VENV) .gridsvc
