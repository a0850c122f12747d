# OneMap server image. Build:  docker build -t onemap .
# Run with the sample:        docker run -p 8000:8000 -v onemap-data:/app/data onemap sh -c "onemap sample && onemap serve --host 0.0.0.0"
# Run against PostGIS:        docker run -p 8000:8000 -e ONEMAP_DATABASE_URL=postgresql://... onemap
# The replicated system (PostGIS primary + replica, Redis, object store, two replicas, nginx): deploy/compose.yaml
#
# requirements.lock pins every dependency with hashes; regenerate it after changing pyproject.toml:
#   uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
#     --python-platform x86_64-manylinux_2_28 --no-header -o requirements.lock

FROM node:20-bookworm-slim AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Dependencies in their own layer, from the lock file (hashes checked): a code change does not reinstall them
COPY requirements.lock /tmp/onemap/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/onemap/requirements.lock
# The server itself, without touching the locked dependencies. A plain (non-editable) install: the package
# carries collections/, styles/ and config/ as its defaults
COPY pyproject.toml setup.py README.md /tmp/onemap/
COPY server /tmp/onemap/server
COPY collections /tmp/onemap/collections
COPY styles /tmp/onemap/styles
COPY config /tmp/onemap/config
RUN pip install --no-cache-dir --no-deps /tmp/onemap && rm -rf /tmp/onemap
# The working directory holds the data (ONEMAP_DATA_DIR=./data) and MapLibre (ONEMAP_MAPLIBRE_DIR=./node_modules/...)
WORKDIR /app
COPY --from=web /app/node_modules ./node_modules
# Map labels: SDF glyphs built from Debian's CJK font, outside the data volume
ENV ONEMAP_GLYPHS_DIR=/app/fonts
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/* && python -m server.viewer.glyphs --out /app/fonts
RUN groupadd --system --gid 10001 onemap \
    && useradd --system --uid 10001 --gid onemap --home /app onemap \
    && mkdir -p /app/data && chown onemap:onemap /app/data
USER 10001:10001
EXPOSE 8000
# /healthz: the process answers (no store or Redis involved, not audited)
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["onemap", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
