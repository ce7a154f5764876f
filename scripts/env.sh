# Sourced by the scripts: one build cache outside the checkout, shared by
# every clone on this machine (RocksDB takes minutes to build from source).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
