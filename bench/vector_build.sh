#!/usr/bin/env bash
# bench/vector_build.sh: builds Vector (the peer the bench scripts compare against) from a
# released tag's source, with only what the benchmark uses, and caches the binary outside the
# repository. Nothing of Vector's is kept in this repository: this script is how to rebuild it.
#
#   bash bench/vector_build.sh SRC            # SRC: a Vector checkout or `git archive` of a tag
#   VECTOR_SRC=/work/vector-src bash bench/vector_build.sh
#
# It edits SRC in place (a scratch copy, never a repository of ours):
#   - Cargo.toml: drops the three dependencies fetched from GitHub (tracing-tower, heim, the
#     ntapi [patch]), which a machine that reaches only crates.io cannot fetch and which this
#     build does not need (tracing-tower is only re-exported; heim serves the host_metrics
#     source, not built, and the disk-buffer size check, which this config has no disk buffer
#     for; ntapi is Windows-only);
#   - src/trace.rs: drops the re-export of tracing-tower;
#   - src/config/validation.rs: the disk-buffer capacity check no longer asks heim for the
#     mount points (it logs that it cannot check, as it does when the query fails).
#   - each workspace crate's root (src/lib.rs, src/main.rs, build.rs) starts with
#     `#![allow(warnings)]` (and loses its `#![deny(warnings)]`): the tag pins rustc 1.92 and its
#     .cargo/config.toml passes -D warnings; built with the installed, newer stable rustc, a lint
#     added since would be an error.
# then runs, at the lowest CPU priority (the development machines are shared):
#   cargo build --release --no-default-features \
#     --features unix,sources-file,sources-stdin,transforms-remap,sinks-file,sinks-console
# `unix` is jemalloc as the released Linux binaries have it. VRL's parse_grok, parse_regex and
# parse_json come with Vector's VRL standard library whatever the features.
#
# Environment:
#   VECTOR_SRC      the source (or the first argument); the tag must take `vrl` from crates.io
#                   (v0.56.0 does; v0.57.0 and main take it from GitHub)
#   VECTOR_BIN      where the binary is copied (/var/cache/tailjet-bench/vector/vector-VERSION-LTO)
#   VECTOR_LTO      thin (default) or fat: the release profile's LTO. Vector's own release profile
#                   is fat LTO with codegen-units=1 (slow to build: several hours on 2 cores);
#                   thin uses codegen-units=16 (VECTOR_CGU overrides)
#   CARGO_BUILD_JOBS  2
#   RUSTUP_TOOLCHAIN  the installed stable toolchain (the tag's rust-toolchain.toml names a
#                   version rustup would have to download)
# Needs: cargo/rustc, protoc (apt-get install protobuf-compiler), libssl-dev, cmake, a C compiler.
set -euo pipefail

say() { printf 'vector_build.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

VECTOR_SRC=${1:-${VECTOR_SRC:-}}
[ -n "$VECTOR_SRC" ] || die "usage: bench/vector_build.sh SRC (a Vector source tree of a tag)"
[ -f "$VECTOR_SRC/Cargo.toml" ] && [ -f "$VECTOR_SRC/src/trace.rs" ] ||
	die "$VECTOR_SRC is not a Vector source tree"
VECTOR_SRC=$(cd "$VECTOR_SRC" && pwd)
VECTOR_LTO=${VECTOR_LTO:-thin}
case $VECTOR_LTO in
thin) VECTOR_CGU=${VECTOR_CGU:-16} ;;
fat) VECTOR_CGU=${VECTOR_CGU:-1} ;;
*) die "VECTOR_LTO must be thin or fat, not '$VECTOR_LTO'" ;;
esac
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-stable}
export CARGO_PROFILE_RELEASE_LTO=$VECTOR_LTO
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=$VECTOR_CGU
FEATURES=unix,sources-file,sources-stdin,transforms-remap,sinks-file,sinks-console

for t in cargo protoc cmake cc python3; do
	command -v "$t" >/dev/null || die "$t is missing (protoc: apt-get install protobuf-compiler)"
done

version=$(awk -F'"' '/^version = / { print $2; exit }' "$VECTOR_SRC/Cargo.toml")
VECTOR_BIN=${VECTOR_BIN:-/var/cache/tailjet-bench/vector/vector-$version-$VECTOR_LTO}

grep -q '^vrl = .*version = ' "$VECTOR_SRC/Cargo.toml" ||
	die "this tag takes vrl from GitHub, not crates.io: use a tag such as v0.56.0"

# The edits, idempotent (a second run finds them done).
python3 - "$VECTOR_SRC" <<'EOF'
import re, sys, pathlib
src = pathlib.Path(sys.argv[1])

def edit(rel, fn):
    p = src / rel
    old = p.read_text()
    new = fn(old)
    if new != old:
        p.write_text(new)
        print(f"vector_build.sh: edited {rel}", file=sys.stderr)

def cargo(t):
    t = re.sub(r'(?m)^tracing-tower = \{ git = .*\n', '', t)
    t = re.sub(r'(?m)^heim = \{ git = .*\n', '', t)
    t = re.sub(r'(?m)^ntapi = \{ git = .*\n', '', t)
    t = re.sub(r'(?m)^sources-host_metrics = \[[^\]]*\]', 'sources-host_metrics = []', t)
    if re.search(r'(?m)^[a-z-]+ = \{ git = ', t):
        sys.exit("vector_build.sh: Cargo.toml still names a git dependency")
    return t

def trace(t):
    return re.sub(r'(?m)^pub use tracing_tower::.*\n', '', t)

def validation(t):
    t = re.sub(r'(?m)^use heim::.*\n', '', t)
    t = re.sub(r'(?m)^use futures_util::', '#[allow(unused_imports)]\nuse futures_util::', t, count=1) \
        if '#[allow(unused_imports)]\nuse futures_util::' not in t else t
    t = re.sub(r'let mountpoints = heim::disk::partitions\(\).*?\.await;',
               'let mountpoints: Result<IndexMap<PathBuf, u64>, &str> =\n'
               '        Err("heim was left out of this build");', t, flags=re.S)
    t = re.sub(r'\nasync fn process_partitions\(.*?\n}\n', '\n', t, flags=re.S)
    if 'heim' in t.replace('heim was left out', ''):
        sys.exit("vector_build.sh: src/config/validation.rs still uses heim")
    return t

edit('Cargo.toml', cargo)
edit('src/trace.rs', trace)
edit('src/config/validation.rs', validation)

# Built with a newer rustc than the tag's rust-toolchain.toml names, a lint added since (1.95's
# unstable_name_collisions on vector-config's `merge`) must not stop the build: .cargo/config.toml
# passes -D warnings to every crate (changing those flags would rebuild every dependency), so each
# workspace crate root and build script says allow(warnings) instead of deny(warnings).
ALLOW = '#![allow(warnings)] // tailjet bench/vector_build.sh: built with a newer rustc\n'
def allow(t):
    t = t.replace('#![deny(warnings)]\n', '')
    return t if t.startswith(ALLOW) else ALLOW + t
for manifest in [src / 'Cargo.toml'] + sorted((src / 'lib').rglob('Cargo.toml')):
    for root in ('src/lib.rs', 'src/main.rs', 'build.rs'):
        f = manifest.parent / root
        if f.is_file():
            edit(str(f.relative_to(src)), allow)
EOF

say "cargo build --release (LTO $VECTOR_LTO, codegen-units $VECTOR_CGU, $CARGO_BUILD_JOBS jobs, nice 19) in $VECTOR_SRC"
start=$(date +%s)
(cd "$VECTOR_SRC" && nice -n 19 cargo build --release --no-default-features --features "$FEATURES" --bin vector)
say "built in $(($(date +%s) - start)) s"
mkdir -p "$(dirname "$VECTOR_BIN")"
cp "$VECTOR_SRC/target/release/vector" "$VECTOR_BIN.tmp"
mv "$VECTOR_BIN.tmp" "$VECTOR_BIN"
"$VECTOR_BIN" --version >&2
say "binary: $VECTOR_BIN"
echo "$VECTOR_BIN"
