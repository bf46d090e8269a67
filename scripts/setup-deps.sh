#!/usr/bin/env bash
# Installs what luzao needs on Debian 12: the build tools and libraries (only those missing) and a
# Python venv with pytest, gguf and numpy for the end-to-end tests.
#
# Environment: LUZAO_VENV (default ~/.cache/luzao/venv); LUZAO_VENV_UPGRADE=1 upgrades the venv's
# packages even when they are present. Runs as root, or through sudo when not root.
set -euo pipefail

PACKAGES=(cmake ninja-build g++ clang lld libclang-rt-14-dev googletest libgtest-dev
          libbenchmark-dev nlohmann-json3-dev libcli11-dev libfmt-dev libcurl4-openssl-dev libcpp-httplib-dev libyaml-cpp-dev pkg-config
          libssl-dev zlib1g-dev python3-venv clang-format clang-tidy chromium
          ocl-icd-opencl-dev opencl-headers pocl-opencl-icd)
PYTHON_PACKAGES=(pytest gguf numpy openai playwright pyyaml)
VENV="${LUZAO_VENV:-$HOME/.cache/luzao/venv}"

say() { printf 'setup-deps: %s\n' "$*" >&2; }

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg -s "$package" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  say "installing ${missing[*]}"
  if [[ $EUID -eq 0 ]]; then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
  else
    say "error: not root and no sudo; install these packages first: ${missing[*]}"
    exit 1
  fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "all Debian packages present"
fi

# kubectl validates deploy/k8s offline (client-side dry run). Debian's kubernetes-client provides
# it; it is not in PACKAGES because it conflicts with a kubectl installed by other means.
if ! command -v kubectl >/dev/null; then
  say "installing kubernetes-client (kubectl)"
  if [[ $EUID -eq 0 ]]; then as_root=(); else as_root=(sudo); fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends kubernetes-client
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating the Python venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
fi
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
if [[ "${LUZAO_VENV_UPGRADE:-0}" == 1 ]]; then
  say "upgrading ${PYTHON_PACKAGES[*]} in $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade "${PYTHON_PACKAGES[@]}"
elif ! "$VENV/bin/python" -c 'import pytest, gguf, numpy, openai, playwright, yaml' 2>/dev/null; then
  say "installing ${PYTHON_PACKAGES[*]} into $VENV"
  "$VENV/bin/python" -m pip install -q "${PYTHON_PACKAGES[@]}"
else
  say "Python venv $VENV is ready"
fi
