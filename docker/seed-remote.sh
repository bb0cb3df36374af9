#!/usr/bin/env bash
# Seeds the cluster's DVC remote with data/raw, so that a first run's validate finds it. Run with the Airflow
# environment of docker/compose.yaml (EMOTION_GIT_REMOTE, EMOTION_GIT_BRANCH, EMOTION_DVC_REMOTE, optional
# EMOTION_DVC_REMOTE_ENDPOINT, AWS_* credentials) and the git SSH key in place. Idempotent: dvc push skips what the
# remote already holds.
set -euo pipefail

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

git clone --quiet --depth 1 --branch "${EMOTION_GIT_BRANCH:-main}" "$EMOTION_GIT_REMOTE" "$work/repo"
cd "$work/repo"
# from the repository's own default remote ...
dvc pull --quiet data.dvc
# ... to the cluster's
dvc remote add --local --force cluster "$EMOTION_DVC_REMOTE"
if [[ -n "${EMOTION_DVC_REMOTE_ENDPOINT:-}" ]]; then
    dvc remote modify --local cluster endpointurl "$EMOTION_DVC_REMOTE_ENDPOINT"
fi
dvc push --quiet -r cluster data.dvc
