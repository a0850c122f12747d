# The two commands a newcomer needs:  make serve  |  make test   (and make lint before a commit)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := postgresql-15 postgresql-15-postgis-3 redis-server chromium gdal-bin fonts-wqy-zenhei docker-compose nginx-light
SCALE  ?= 20000

.PHONY: serve test lint install system-deps sample clean glyphs

## serve: install, write the sample county (once) and a local API key (once), run on http://127.0.0.1:8000
serve: install data/onemap.gpkg data/local-api-key
	@echo "OneMap (classified edition) on http://127.0.0.1:8000 - callers need an API key:"
	@echo "  viewer:  http://127.0.0.1:8000/map?api_key=$$(cat data/local-api-key)"
	@echo "  APIs:    curl -H 'X-API-Key: $$(cat data/local-api-key)' http://127.0.0.1:8000/collections"
	$(BIN)/onemap serve

## test: install everything (incl. PostGIS, Redis, Chromium) and run the whole suite
test: system-deps install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff (rules in pyproject.toml) over the code, tests and benchmarks, then mypy over server/
lint: $(VENV)/.installed
	@status=0; \
	$(BIN)/ruff check server tests load-tests || status=1; \
	$(BIN)/mypy || status=1; \
	exit $$status

install: $(VENV)/.installed node_modules/.installed data/fonts/.built

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,dev]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## glyphs: the map labels' SDF glyphs from Debian's CJK font (fonts-noto-cjk or fonts-wqy-zenhei), into data/fonts
glyphs: $(VENV)/.installed
	$(BIN)/python -m server.viewer.glyphs --out data/fonts

data/fonts/.built: $(VENV)/.installed
	$(BIN)/python -m server.viewer.glyphs --out data/fonts
	touch $@

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

data/onemap.gpkg:
	$(BIN)/onemap sample --scale $(SCALE)

data/local-api-key: data/onemap.gpkg
	$(BIN)/onemap keys create --name "local development" | sed -n 's/^api key.*: //p' > $@

sample: install
	$(BIN)/onemap sample --scale $(SCALE)

clean:
	rm -rf $(VENV) node_modules data .pytest_cache
