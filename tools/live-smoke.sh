#!/usr/bin/env bash
# Runs the shipped real-venue configs briefly against Binance's production endpoints and prints
# the summaries. Needs internet access; never used by tests or CI.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
cargo build --release
for cfg in configs/binance-spot.toml configs/binance-usdm.toml; do
    echo "== $cfg ($seconds s)"
    ./target/release/wsfeed run --config "$cfg" --seconds "$seconds"
done
