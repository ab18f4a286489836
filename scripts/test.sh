#!/usr/bin/env bash
# The whole test suite: every crate in release mode (the kernel tests are heavy),
# then the kernel tests again with each ISA path this CPU has forced by AXONAL_ISA,
# so that the process-wide dispatch is exercised on every path.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --release

for isa in $(cargo run --quiet --release -p axonal-tools -- info --list-isa); do
  echo "=== kernel tests with AXONAL_ISA=$isa ==="
  AXONAL_ISA="$isa" cargo test --release -p axonal-kernels
done
