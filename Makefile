# The README's two commands. Everything else lives in the `gridsvc` CLI.
#   make run   install, start the embedded PostGIS, migrate, load Lingfeng, serve on :8000
#   make test  the same set-up, then the whole suite against a separate database
# DATABASE_URL=postgresql://... uses an existing PostGIS server instead.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install db tools clean

run: db
	$(BIN)/gridsvc migrate
	$(BIN)/gridsvc seed lingfeng
	$(BIN)/gridsvc serve

test: db tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Real clients for the tests, from Debian's packages: Chromium for the pages,
# GDAL (ogrinfo, ogr2ogr) for OGC API - Features. Installed when running as
# root; otherwise those tests are skipped with the reason.
tools:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v ogrinfo >/dev/null || missing="$$missing gdal-bin"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing$$missing for the tests ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "Not installed:$$missing; their tests will be skipped (sudo apt-get install$$missing)"; fi; \
	fi

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
