#!/usr/bin/env bash
# Usage: deploy/push-image.sh REPOSITORY:COMMIT [docker build arguments...]
# Builds and pushes the image of one commit and prints it by digest (REPOSITORY@sha256:...), the form
# every deployment refers to. An image already pushed for that commit is reused, not rebuilt: re-running
# an earlier commit's deploy (a rollback) then deploys the very images it deployed before, and a
# repository with immutable tags never sees a second push of a tag.
set -euo pipefail
ref="$1"
shift
[[ $ref =~ :[0-9a-f]{40}$ ]] || { echo "push-image: $ref is not tagged with a full commit hash" >&2; exit 2; }
if ! docker pull --quiet "$ref" >&2 2>/dev/null; then
    docker build --tag "$ref" "$@" >&2
    docker push --quiet "$ref" >&2
fi
# After a push or a pull, RepoDigests holds the registry's digest of the image.
repo_digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" | grep -F -m1 "${ref%:*}@")
echo "$repo_digest"
