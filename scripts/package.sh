#!/bin/sh
# The wheel, and an install of it with its runtime dependencies, both from uv.lock only: the
# steps the Containerfile runs and tests/e2e/test_wheel.py runs the same way.
#
#   scripts/package.sh build DIST           the wheel and requirements.txt (the lock's runtime
#                                           packages, pinned with hashes) into DIST
#   scripts/package.sh install DIST VENV    a new venv at VENV with exactly those
#
# UV names the uv to run (default: uv on PATH); the Python is $UV_PYTHON, else python3.
set -eu
UV=${UV:-uv}
export UV_PYTHON_DOWNLOADS=never

case "${1:-}" in
build)
    dist=$2
    "$UV" build --wheel --out-dir "$dist"
    "$UV" export --frozen --no-default-groups --no-emit-project --no-header \
        --format requirements.txt --output-file "$dist/requirements.txt" >/dev/null
    ;;
install)
    dist=$2 venv=$3
    "$UV" venv --quiet --python "${UV_PYTHON:-python3}" "$venv"
    "$UV" pip install --quiet --python "$venv/bin/python" --require-hashes --no-build \
        --requirement "$dist/requirements.txt"
    "$UV" pip install --quiet --python "$venv/bin/python" --no-deps "$dist"/*.whl
    ;;
*)
    echo "usage: $0 build DIST | install DIST VENV" >&2
    exit 2
    ;;
esac
