# The README's two commands. Everything else lives in the `gridsvc` CLI.
#   make run   install, start the embedded PostGIS, migrate, load Lingfeng, serve on :8000
#   make test  the same set-up, then the whole suite against a separate database
# DATABASE_URL=postgresql://... uses an existing PostGIS server instead.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install db browser clean

run: db
	$(BIN)/gridsvc migrate
	$(BIN)/gridsvc seed lingfeng
	$(BIN)/gridsvc serve

test: db browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Pages are tested in real headless Chromium (Debian's package).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing chromium for the browser tests ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "chromium is not installed: the browser tests will be skipped (sudo apt-get install chromium)"; fi; }

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
