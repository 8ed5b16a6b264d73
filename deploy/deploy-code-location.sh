#!/usr/bin/env bash
# Deploys the code location of one commit to a Dagster+ hybrid deployment, with the two images that
# commit's build pushed, both by digest. The GitHub workflow runs it after pushing the images; a
# rollback runs it by hand from an earlier commit's checkout with that commit's digests
# (docs/google-cloud.md, "Deploying"). `dagster-cloud` comes from the locked project environment.
#
# Flags and requirements as in dagster-cloud-cli 1.13 (dagster_cloud_cli/commands/ci/__init__.py):
# every `ci` session command reads its state dir from DAGSTER_BUILD_STATEDIR (STATEDIR_OPTION);
# `ci init` needs an organization and an API token (config_utils.dagster_cloud_options) and,
# outside a pull request, deploys to --deployment; `ci set-build-output` records
# "<build.registry>:<--image-tag>" as the image; `ci deploy` sends it and waits for the location to load.
#
# Environment:
#   DAGSTER_DEPLOYMENT          Dagster+ deployment (dev, prod)
#   DAGSTER_CLOUD_ORGANIZATION, DAGSTER_CLOUD_API_TOKEN, DAGSTER_BUILD_STATEDIR
#   REGISTRY                    Artifact Registry repository, e.g. asia-northeast1-docker.pkg.dev/P/karte
#   GIT_SHA                     the commit both images were built from
#   CODE_LOCATION_DIGEST        sha256:... of $REGISTRY/code-location:$GIT_SHA
#   TRAINING_IMAGE              $REGISTRY/training@sha256:... of the same commit
#   GIT_URL                     optional: the commit's URL, shown by Dagster+
#   DRY_RUN=1                   stop before `ci deploy` (make deploy-check; needs no network)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "deploy-code-location: $*" >&2; exit 2; }
for name in DAGSTER_DEPLOYMENT DAGSTER_BUILD_STATEDIR REGISTRY GIT_SHA CODE_LOCATION_DIGEST TRAINING_IMAGE; do
    [[ -n "${!name:-}" ]] || die "$name is not set"
done
[[ $GIT_SHA =~ ^[0-9a-f]{40}$ ]] || die "GIT_SHA=$GIT_SHA is not a full commit hash"
[[ $CODE_LOCATION_DIGEST =~ ^sha256:[0-9a-f]{64}$ ]] ||
    die "CODE_LOCATION_DIGEST=$CODE_LOCATION_DIGEST is not an image digest (sha256:<64 hex>)"
[[ $TRAINING_IMAGE =~ ^[^@:]+(:[0-9]+)?/[^@:]+@sha256:[0-9a-f]{64}$ ]] ||
    die "TRAINING_IMAGE=$TRAINING_IMAGE is not an image by digest (<repository>@sha256:<64 hex>)"

# The rendered file lies beside the state dir, which `ci init` empties; `ci init` records its path and
# `ci deploy` reads the location from it.
rendered="${DAGSTER_BUILD_STATEDIR%/}.dagster_cloud.yaml"
dagster-cloud ci template --project-dir=. --dagster-cloud-yaml-path=dagster_cloud.yaml \
    --value "registry=$REGISTRY/code-location" --value "training_image=$TRAINING_IMAGE" >"$rendered"
dagster-cloud ci check --project-dir=. --dagster-cloud-yaml-path="$rendered" --dagster-cloud-connect-check=skip
dagster-cloud ci init --project-dir=. --dagster-cloud-yaml-path="$rendered" \
    --deployment="$DAGSTER_DEPLOYMENT" --commit-hash="$GIT_SHA" ${GIT_URL:+--git-url="$GIT_URL"}
# "<registry>:<sha>@<digest>": the tag names the commit, the digest is what the agent pulls
# (a reference may carry both: reference := name [ ":" tag ] [ "@" digest ], distribution/reference).
dagster-cloud ci set-build-output --location-name=karte_assets --image-tag="$GIT_SHA@$CODE_LOCATION_DIGEST"
[[ "${DRY_RUN:-0}" == 1 ]] || dagster-cloud ci deploy
