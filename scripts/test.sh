#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run them:
# ruff, mypy --strict and pytest. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=.venv

# Debian packages the test suite uses: network namespace tools and a DHCP
# server (dnsmasq-base: the binary, no system service) for the end-to-end
# suites, a C compiler for the native shim, the mingw-w64 cross compiler
# that checks the Windows struct layouts against the Windows headers, and
# systemd for systemd-analyze, which checks the example units (no systemd
# needs to run; setpriv, from util-linux, is always there).
debian_packages=(iproute2 gcc libc6-dev dnsmasq-base gcc-mingw-w64-x86-64 systemd)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for package in "${debian_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$package")
    done
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "== installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages (run as root to install): ${missing[*]}" >&2
        exit 1
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "== creating $venv"
    "$python" -m venv "$venv"
fi
echo "== installing lanparty and its test tools"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[dev]'

echo "== ruff"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
echo "== mypy --strict (Linux, then Windows)"
"$venv/bin/mypy"
"$venv/bin/mypy" --platform win32
echo "== pytest"
"$venv/bin/python" -m pytest "$@"
