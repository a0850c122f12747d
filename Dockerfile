# OneMap server image. Build:  docker build -t onemap .
# Run with the sample:        docker run -p 8000:8000 -v onemap-data:/app/data onemap sh -c "onemap sample && onemap serve --host 0.0.0.0"
# Run against PostGIS:        docker run -p 8000:8000 -e ONEMAP_DATABASE_URL=postgresql://... onemap

FROM node:20-bookworm-slim AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A plain (non-editable) install: the package carries collections/, styles/ and config/ as its defaults
COPY pyproject.toml setup.py README.md /tmp/onemap/
COPY server /tmp/onemap/server
COPY collections /tmp/onemap/collections
COPY styles /tmp/onemap/styles
COPY config /tmp/onemap/config
RUN pip install --no-cache-dir /tmp/onemap && rm -rf /tmp/onemap
# The working directory holds the data (ONEMAP_DATA_DIR=./data) and MapLibre (ONEMAP_MAPLIBRE_DIR=./node_modules/...)
WORKDIR /app
COPY --from=web /app/node_modules ./node_modules
RUN useradd --system --home /app onemap && mkdir -p /app/data && chown onemap /app/data
USER onemap
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/conformance')"
CMD ["onemap", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
