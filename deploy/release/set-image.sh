#!/usr/bin/env bash
# Pin the image of one environment to a digest: rewrite its release component
# (deploy/kustomize/overlays/<env>/release/kustomization.yaml) in place.
#
#   deploy/release/set-image.sh RELEASE_DIR REPOSITORY sha256:<64 hex>
#
# The component names one image, the one the base manifests use; its entry becomes
# REPOSITORY@DIGEST. The release workflow runs this for staging before applying the
# overlay, and for prod to make the promotion pull request: one file, one diff.
# Exit status 2: bad arguments, nothing written.
set -euo pipefail

usage() {
  echo "usage: $0 RELEASE_DIR REPOSITORY sha256:<64 hex digits>" >&2
  echo "$0: $1" >&2
  exit 2
}

[[ $# -eq 3 ]] || usage "expected 3 arguments, got $#"
release_dir=$1 repository=$2 digest=$3
file="$release_dir/kustomization.yaml"

[[ -f $file ]] || usage "$file does not exist (the release component of an overlay)"
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || usage "not a sha256 digest: $digest"
# A repository reference without tag or digest: host/path in lower case.
[[ $repository =~ ^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$ ]] \
  || usage "not an image repository (lower case, no tag or digest): $repository"

# The image name the base manifests use, as the component already names it.
name=$(awk '$1 == "-" && $2 == "name:" { print $3; exit }' "$file")
[[ -n $name ]] || usage "$file names no image (expected an '- name:' entry under images:)"

# Written beside the file and renamed over it, so a failure leaves the old one whole.
staged=$(mktemp "$release_dir/.kustomization.XXXXXX")
trap 'rm -f "$staged"' EXIT
sed -n '/^#/p' "$file" > "$staged"
cat >> "$staged" <<YAML
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
images:
  - name: $name
    newName: $repository
    digest: $digest
YAML
chmod 644 "$staged"
mv "$staged" "$file"
trap - EXIT
echo "$file: $name -> $repository@$digest"
