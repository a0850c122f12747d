"""The deployment files: deploy/compose.yaml rendered and validated by docker-compose (Debian's
package), deploy/k8s/ validated against the bundled Kubernetes schemas (kubernetes-validate, offline),
their cross-references checked, and the Dockerfile's layering, user, lock file and health check."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.30.0"


def compose_config(path: Path) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        raise RuntimeError("docker-compose is required (Debian package docker-compose)")
    return subprocess.run(["docker-compose", "-f", str(path), "config"], capture_output=True, text=True, timeout=60,
                          cwd=path.parent)


@pytest.fixture(scope="module")
def compose() -> dict:
    out = compose_config(DEPLOY / "compose.yaml")
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_is_the_documented_system(compose):
    services = compose["services"]
    assert {"postgis-primary", "postgis-replica", "redis", "minio", "onemap-1", "onemap-2", "nginx"} <= set(services)
    for name in ("onemap-1", "onemap-2"):
        env = services[name]["environment"]
        assert "@postgis-primary:" in env["ONEMAP_DATABASE_URL"]
        assert "@postgis-replica:" in env["ONEMAP_DATABASE_READ_URLS"]
        assert env["ONEMAP_REDIS_URL"].startswith("redis://redis:")
        assert env["AWS_S3_ENDPOINT"].startswith("minio:")
    assert services["onemap-1"]["environment"]["ONEMAP_CACHE_SECRET"] == \
        services["onemap-2"]["environment"]["ONEMAP_CACHE_SECRET"]
    assert "wal_level=replica" in services["postgis-primary"]["command"]
    replica = (DEPLOY / "postgres" / "replica-entrypoint.sh").read_text()
    assert "pg_basebackup -h postgis-primary" in replica and " -R" in replica
    upstreams = re.findall(r"^\s*server\s+(\S+):8000", (DEPLOY / "nginx.conf").read_text(), re.M)
    assert upstreams == ["onemap-1", "onemap-2"]


def test_compose_validation_catches_a_bad_file(tmp_path):
    """The control: docker-compose refuses an unknown key, so the check above can fail."""
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    bad = tmp_path / "deploy" / "compose.yaml"
    bad.write_text(bad.read_text().replace("restart: unless-stopped", "restrat: unless-stopped"))
    out = compose_config(bad)
    assert out.returncode != 0 and "restrat" in out.stderr


def _manifests() -> dict[str, dict]:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    docs = {name: yaml.safe_load((K8S / name).read_text()) for name in listed}
    docs["secret.example.yaml"] = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    return docs


@pytest.mark.parametrize("name", ["configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml",
                                  "secret.example.yaml"])
def test_k8s_manifest_is_valid(name):
    kubernetes_validate.validate(_manifests()[name], K8S_VERSION, strict=True)


def test_k8s_schema_check_catches_a_bad_manifest():
    bad = _manifests()["deployment.yaml"]
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_k8s_manifests_refer_to_each_other():
    docs = _manifests()
    deployment = docs["deployment.yaml"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert docs["service.yaml"]["spec"]["selector"].items() <= labels.items()
    assert docs["pdb.yaml"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = docs["hpa.yaml"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert container["envFrom"][0]["configMapRef"]["name"] == docs["configmap.yaml"]["metadata"]["name"]
    secret = docs["secret.example.yaml"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    assert refs and all(r["name"] == secret["metadata"]["name"] and r["key"] in secret["stringData"] for r in refs)
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_dockerfile_layers_user_lock_and_health_check():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.startswith("#")]
    text = "\n".join(lines)
    install = next(i for i, line in enumerate(lines) if "--require-hashes" in line and "requirements.lock" in line)
    assert install < next(i for i, line in enumerate(lines) if line.startswith("COPY server"))  # deps first
    assert re.search(r"^USER (?!root|0)", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text.split("HEALTHCHECK", 1)[1]
    lock = (ROOT / "requirements.lock").read_text()
    pinned = re.findall(r"^([A-Za-z0-9_.-]+)==", lock, re.M)
    assert {"fastapi", "rasterio", "psycopg", "uvicorn"} <= {p.lower() for p in pinned}
    assert lock.count("--hash=sha256:") >= len(pinned)
