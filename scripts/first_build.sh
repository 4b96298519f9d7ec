#!/usr/bin/env bash
# Times what a new user builds first, on a fresh clone with an empty target folder
# (crate sources already in ~/.cargo/registry, so no downloads are timed):
#   1. `cargo run --release --example quickstart` (the README's first command);
#   2. then a new crate in the same workspace that depends on auto_hook and
#      auto_hook_models (`cargo new` inside the checkout adds it to the members):
#      `cargo build --release`, listing every crate it compiles.
# Usage: scripts/first_build.sh [COMMIT] (default HEAD). Run it on a quiet machine.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
commit="${1:-HEAD}"
dir="$(mktemp -d /tmp/first_build.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
git clone -q "$repo" "$dir/auto_hook"
cd "$dir/auto_hook"
git checkout -q "$commit"
export CARGO_TARGET_DIR="$dir/auto_hook/target" CARGO_INCREMENTAL=0
unset RUSTFLAGS
echo "commit $(git rev-parse --short HEAD), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
cargo build --release --example quickstart 2>"$dir/quickstart.log"
end=$(date +%s.%N)
echo "quickstart, cold: $(echo "$end - $start" | bc) s, $(grep -c '^ *Compiling' "$dir/quickstart.log") crates compiled"
grep -q "criterion\|trybuild\|clap" "$dir/quickstart.log" && echo "  (compiles criterion/trybuild/clap)"
cargo run --release --example quickstart >/dev/null 2>&1 && echo "  quickstart runs"
cargo new -q --lib mycrate
grep -q '"mycrate"' Cargo.toml || sed -i 's/^members = \[/members = ["mycrate", /' Cargo.toml
cat >> mycrate/Cargo.toml <<'TOML'
auto_hook = { path = ".." }
auto_hook_models = { path = "../auto_hook_models" }
TOML
start=$(date +%s.%N)
cargo build --release -p mycrate 2>"$dir/mycrate.log"
end=$(date +%s.%N)
echo "a new crate depending on auto_hook + auto_hook_models, after it: $(echo "$end - $start" | bc) s; compiled:"
grep '^ *Compiling' "$dir/mycrate.log" | sed 's/^ */  /'
