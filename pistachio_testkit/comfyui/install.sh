#!/usr/bin/env bash
# Install the real ComfyUI 0.3.64 with its own venv, for the integration tests.
#
#   COMFYUI_HOME     where it goes   (default ~/.cache/pistachio/comfyui-0.3.64)
#   COMFYUI_TARBALL  the source      (default <repo>/../shared/comfyui-0.3.64-src.tar.gz;
#                                     when absent: git clone --depth 1 --branch v0.3.64)
#   PYTHON           the interpreter for the venv (default python3)
#
# Result: $COMFYUI_HOME/ComfyUI-0.3.64/ (the source) and $COMFYUI_HOME/venv/ (its python).
# Cached: nothing is done when $COMFYUI_HOME/.installed holds the sha256 of the source and of
# requirements.txt. Otherwise it builds in a temporary folder beside COMFYUI_HOME and renames
# that into place, so an interrupted install never looks complete.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
version="0.3.64"
target="${COMFYUI_HOME:-$HOME/.cache/pistachio/comfyui-$version}"
tarball="${COMFYUI_TARBALL:-$repo_root/../shared/comfyui-$version-src.tar.gz}"
requirements="$here/requirements.txt"
python="${PYTHON:-python3}"
git_url="https://github.com/comfyanonymous/ComfyUI"
started=$SECONDS

if [[ -f "$tarball" ]]; then
    source_id="$(sha256sum "$tarball" | cut -d' ' -f1)"
else
    source_id="git:$git_url@v$version"
fi
key="$( { echo "$source_id"; sha256sum "$requirements" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)"

if [[ -f "$target/.installed" && "$(cat "$target/.installed")" == "$key" ]]; then
    echo "comfyui: $version already installed at $target (stamp matches; nothing to do)"
    exit 0
fi

mkdir -p "$(dirname "$target")"
build="$(mktemp -d "$(dirname "$target")/.comfyui-build.XXXXXX")"
trap 'rm -rf "$build"' EXIT
echo "comfyui: installing $version into $target (building in $build)"

if [[ -f "$tarball" ]]; then
    echo "comfyui: unpacking $tarball"
    tar -xzf "$tarball" -C "$build"
else
    echo "comfyui: $tarball not found; cloning $git_url v$version"
    git clone --quiet --depth 1 --branch "v$version" "$git_url" "$build/ComfyUI-$version"
fi
test -f "$build/ComfyUI-$version/main.py" || { echo "comfyui: no ComfyUI-$version/main.py in the source" >&2; exit 1; }

echo "comfyui: creating venv with $("$python" --version) and installing $(grep -c '==' "$requirements") pinned packages"
"$python" -m venv "$build/venv"
# (this machine's pip config names find-links folders that may be absent: pip warns per package; drop those lines)
"$build/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
    2> >(grep -v "is neither a file nor a directory" >&2)
"$build/venv/bin/python" -c "import torch, torchvision, torchsde, aiohttp, requests; print('comfyui: torch', torch.__version__)"

echo "$key" > "$build/.installed"
if [[ -e "$target" ]]; then
    old="$build.old"
    mv "$target" "$old"
    mv "$build" "$target"
    rm -rf "$old"
else
    mv "$build" "$target"
fi
trap - EXIT
echo "comfyui: installed at $target in $((SECONDS - started)) s"
