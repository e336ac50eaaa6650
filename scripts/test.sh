#!/usr/bin/env bash
# Runs every banmesh test on a fresh Debian machine: installs the Debian
# packages the tests need (when missing, as root), then `cargo test`.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p banmesh-crdt`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need (CI and people install the same set):
# faketime runs a node with a wrong clock in the mesh tests; fail2ban checks
# the shipped action and jail files (`cargo test fail2ban`); python3 runs
# the Fail2BanSync clients against the gateway (`cargo test gateway`);
# iproute2 makes the network namespaces the multi-host tests run nodes in
# (`cargo test netns`, as root); nftables and iproute2 run a fail2ban-server
# with the shipped nftables action in a namespace (`cargo test fail2ban_nft`),
# and nftables holds mesh bans itself in one (`cargo test nftables_netns`);
# systemd provides systemd-analyze, which checks the shipped unit
# (`cargo test systemd_unit`); lintian (about a minute to install) checks
# the Debian package `cargo test --test deb` builds; python3-venv holds
# schemathesis (below); chromium and chromium-driver run the dashboard in a
# headless browser (`cargo test --test gateway dashboard`).
packages=(faketime fail2ban python3 python3-venv nftables iproute2 systemd lintian chromium chromium-driver)

missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# cargo-deb builds the Debian package (scripts/deb.sh, `cargo test --test
# deb`); compiling it takes about 2.5 minutes, once per machine. Pinned:
# the test packages the debug build (`--profile dev`), which cargo-deb 3.8
# accepts with a warning and later versions may refuse.
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install --locked cargo-deb --version 3.8.0
fi

# Schemathesis (PyPI) tests the gateway against its OpenAPI document
# (`cargo test --test gateway schemathesis`), from a venv kept between runs
# under ~/.cache; pinned, as a newer one may add checks.
schemathesis_version=4.32.5
venv="${HOME}/.cache/banmesh-schemathesis"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version"; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$schemathesis_version"
fi

# Every test runs (--no-fail-fast); the last line is the count of failures.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
test_status=$status

# Every fuzz target runs a few seconds on its seeds (BANMESH_FUZZ_SECONDS
# each, default 3; 0 skips), so they keep building and the seeds keep
# passing; only on a full run (no arguments). Needs cargo-fuzz, installed
# when missing; the fuzz build (unoptimised, for build time) has its own
# target directory (fuzz/target).
fuzz_seconds=${BANMESH_FUZZ_SECONDS:-3}
if [ "$#" -eq 0 ] && [ "$fuzz_seconds" -gt 0 ]; then
    command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked
    BANMESH_FUZZ_BUILD=--dev bash scripts/fuzz.sh "$fuzz_seconds" || {
        status=$?
        echo "scripts/test.sh: a fuzz target failed (exit $status)" >&2
    }
fi

failed=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^failed/) n += $i } END { print n + 0 }' "$log")
if [ "$test_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "scripts/test.sh: cargo test failed before running every test (exit $test_status)" >&2
fi
echo "scripts/test.sh: $failed test(s) failed"
exit "$status"
