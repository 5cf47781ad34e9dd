#!/usr/bin/env bash
# Validates deploy/k8s_indexed_job.yaml against the Kubernetes API schema, offline, for every
# version docs/scaling.md claims (1.29, the first with backoffLimitPerIndex on by default, to
# 1.37), strictly (unknown fields refused). PyPI's kubernetes-validate bundles the schemas;
# it is installed once into a virtual environment under target/ (the only network access;
# KUBERNETES_VALIDATE_VENV names another place). One Python process checks all versions.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${KUBERNETES_VALIDATE_VENV:-target/ci-kubernetes-validate}
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then
    # Debian's python3 has no venv without python3-venv.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi
"$venv/bin/python" - deploy/k8s_indexed_job.yaml <<'PY'
import sys
import kubernetes_validate as kv
import yaml

path = sys.argv[1]
with open(path) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
versions = [f"1.{minor}.0" for minor in range(29, 38)]
failed = 0
for version in versions:
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            failed += 1
            where = ".".join(str(p) for p in e.path)
            print(f"{path}: {name} is invalid for Kubernetes {version}: {where}: {e.message}")
print(f"{path}: {len(docs)} resources checked against Kubernetes {versions[0]} to {versions[-1]} (strict): "
      + ("ok" if not failed else f"{failed} failures"))
sys.exit(1 if failed else 0)
PY
