#!/usr/bin/env bash
# Seed the cluster's DVC remote with the data sources (every .dvc file: data.dvc, the raw data) at the head of the
# branch runs follow, so a first run's `validate` finds them. Idempotent (DVC pushes only what the remote lacks). Run by compose's
# `remote-seed` job, by `make seed-remote`, and by the local cluster test (tests/celery_cluster/), with the Airflow
# components' environment: EMOTION_GIT_REMOTE, EMOTION_GIT_BRANCH, EMOTION_DVC_REMOTE, EMOTION_DVC_REMOTE_ENDPOINT,
# and the remote's credentials (AWS_*). The data comes from the repository's own default DVC remote (the in-repo
# sample for this repository; your team's remote for your data), or from the DVC remote URL in EMOTION_SEED_FROM.
set -euo pipefail
: "${EMOTION_GIT_REMOTE:?set EMOTION_GIT_REMOTE (git URL of the pipeline)}"
: "${EMOTION_DVC_REMOTE:?set EMOTION_DVC_REMOTE (DVC remote URL of the cluster)}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --depth 1 --branch "${EMOTION_GIT_BRANCH:-main}" "$EMOTION_GIT_REMOTE" "$work/repo"
cd "$work/repo"
mapfile -t sources < <(git ls-files -- '*.dvc')
if [ -n "${EMOTION_SEED_FROM:-}" ]; then
    dvc remote add --local --force seed-source "$EMOTION_SEED_FROM"
    dvc pull -r seed-source "${sources[@]}"
else
    dvc pull "${sources[@]}"
fi
dvc remote add --local --force cluster "$EMOTION_DVC_REMOTE"
if [ -n "${EMOTION_DVC_REMOTE_ENDPOINT:-}" ]; then
    dvc remote modify --local cluster endpointurl "$EMOTION_DVC_REMOTE_ENDPOINT"
fi
dvc push -r cluster "${sources[@]}"
echo "seeded $EMOTION_DVC_REMOTE with ${sources[*]} of $EMOTION_GIT_REMOTE (${EMOTION_GIT_BRANCH:-main})"
