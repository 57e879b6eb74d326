#!/usr/bin/env bash
# System packages the tests need beyond the Python venv, installed only when missing:
#   postgresql        server binaries (initdb, pg_ctl): the ledger tests start a real server
#   chromium          headless browser for the screenshot tests (/usr/bin/chromium)
#   fonts-dejavu-core a font, so headless pages render text the same everywhere
#   haproxy           the front `leadscore serve` puts before the worker (serving/front.py)
# `system-deps.sh serve` checks haproxy only: what `make serve` needs.
# Debian/Ubuntu (apt-get). Quiet and quick when everything is present; safe to re-run.
set -euo pipefail

have_postgres() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        return 0
    fi
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [[ -x "$bin/pg_ctl" && -x "$bin/initdb" ]] && return 0
    done
    return 1
}

have_package() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
if [[ "${1:-}" != "serve" ]]; then
    have_postgres || missing+=(postgresql)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    if command -v dpkg-query >/dev/null 2>&1; then
        have_package fonts-dejavu-core || missing+=(fonts-dejavu-core)
    elif [[ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
        missing+=(fonts-dejavu-core)
    fi
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]}, and this is not a Debian/Ubuntu system (no apt-get)." >&2
    echo "Install them with your package manager: PostgreSQL server (initdb, pg_ctl), chromium, DejaVu fonts, haproxy." >&2
    exit 1
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "system-deps: missing ${missing[*]}; installing needs root, and sudo is not available." >&2
    echo "Run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "system-deps: installing ${missing[*]}"
${as_root[@]+"${as_root[@]}"} apt-get update -qq
${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system-deps: done"
