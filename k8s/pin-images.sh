#!/usr/bin/env bash
# Pin the prod overlay's modelbus images to the digests a release published.
# Usage: k8s/pin-images.sh <version>      e.g. k8s/pin-images.sh 0.2.0
# For each `images:` entry of k8s/overlays/prod/kustomization.yaml it resolves
# <newName>:<version> with `crane digest` (or `docker buildx imagetools inspect`) and writes
# newTag and digest. Review with `git diff`, run `uv run pytest tests/k8s`, commit, apply.
# Third-party images (redis, postgres in k8s/base/data/) are pinned in place: resolve them
# the same way (`crane digest redis:7.4-alpine`) and edit the @sha256 part.
set -euo pipefail

version="${1:?usage: k8s/pin-images.sh <version>}"
file="$(dirname "$0")/overlays/prod/kustomization.yaml"

digest_of() {
    if command -v crane >/dev/null 2>&1; then
        crane digest "$1"
    elif command -v docker >/dev/null 2>&1; then
        docker buildx imagetools inspect "$1" --format '{{json .Manifest}}' \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])'
    else
        echo "pin-images: need crane or docker (buildx) to resolve $1" >&2
        return 1
    fi
}

for repo in $(sed -nE 's/.*newName: ([^,]+),.*/\1/p' "$file"); do
    digest="$(digest_of "$repo:$version")"
    [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "pin-images: bad digest for $repo: $digest" >&2; exit 1; }
    sed -i -E "s#(newName: $repo, newTag: )[^,]+(, digest: )sha256:[0-9a-f]{64}#\1$version\2$digest#" "$file"
    echo "$repo:$version@$digest"
done
