#!/usr/bin/env bash
# End-to-end check against a real Grove cluster: deploy a pipeline, wait for its gang, read its status,
# diff (must be empty), delete it and wait until it is gone. Skipped (exit 0) when no cluster is given.
#
#   KUBECONFIG=~/.kube/config deploy/e2e.sh                       # pipelines/aggregated.py, 20m timeout
#   E2E_PIPELINE=pipelines/single_node_disagg.py E2E_NAMESPACE=e2e E2E_IMAGE=registry/me/runtime:dev deploy/e2e.sh
#
# Needs: Grove installed (deploy/README.md), nodes that fit the pipeline (GPUs for model stages), and an
# image with the runtime and the pipeline's code (deploy/Dockerfile.runtime, deploy/Dockerfile.pipeline).
set -euo pipefail

GP=${GROVE_PIPELINES:-grove-pipelines}
PIPELINE=${E2E_PIPELINE:-pipelines/aggregated.py}
NAMESPACE=${E2E_NAMESPACE:-grove-pipelines-e2e}
TIMEOUT=${E2E_TIMEOUT:-20m}

if [ -z "${KUBECONFIG:-}" ] || [ ! -f "${KUBECONFIG%%:*}" ]; then
  echo "skipped: set KUBECONFIG to a cluster with Grove installed to run the end-to-end check"
  exit 0
fi

image_args=()
if [ -n "${E2E_IMAGE:-}" ]; then
  image_args=(--image "$E2E_IMAGE")
fi

step() { printf '==> %s\n' "$*"; }
name=""
cleanup() {
  if [ -n "$name" ]; then
    "$GP" delete "$name" -n "$NAMESPACE" --wait --timeout 5m >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

step "deploy $PIPELINE into $NAMESPACE (waiting up to $TIMEOUT)"
out=$("$GP" deploy "$PIPELINE" -n "$NAMESPACE" --create-namespace --wait --timeout "$TIMEOUT" "${image_args[@]}")
echo "$out"
name=$(printf '%s\n' "$out" | sed -n 's|^podcliqueset/\([a-z0-9.-]*\) .*|\1|p' | head -n 1)
[ -n "$name" ] || { echo "FAIL: deploy printed no podcliqueset line"; exit 1; }

step "status $name"
"$GP" status "$name" -n "$NAMESPACE"
"$GP" status "$name" -n "$NAMESPACE" -o json | grep -q '"ready": true' || { echo "FAIL: $name is not ready"; exit 1; }

step "diff (expected: no change)"
"$GP" diff "$PIPELINE" -n "$NAMESPACE" "${image_args[@]}" || { echo "FAIL: diff after deploy is not empty"; exit 1; }

step "delete $name"
"$GP" delete "$name" -n "$NAMESPACE" --wait --timeout 10m
name=""
echo "e2e: ok"
