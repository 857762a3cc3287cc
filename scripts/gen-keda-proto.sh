#!/usr/bin/env bash
# Regenerates dyno-scaler-keda/src/externalscaler.rs from dyno-scaler-keda/proto/externalscaler.proto with
# tonic-prost-build (needs protoc: apt-get install protobuf-compiler). The generated file is checked in, so
# building dyno-scaler never needs protoc.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "gen-keda-proto"
version = "0.0.0"
edition = "2024"
publish = false
[dependencies]
tonic-prost-build = "0.14"
[workspace]
TOML
cat > "$work/src/main.rs" <<'RS'
fn main() {
    let mut args = std::env::args().skip(1);
    let (out, proto, dir) = (args.next().unwrap(), args.next().unwrap(), args.next().unwrap());
    tonic_prost_build::configure().build_server(true).build_client(true).out_dir(out).compile_protos(&[proto], &[dir]).unwrap();
}
RS
cargo run -q --manifest-path "$work/Cargo.toml" -- "$root/dyno-scaler-keda/src" \
  "$root/dyno-scaler-keda/proto/externalscaler.proto" "$root/dyno-scaler-keda/proto"
echo "wrote dyno-scaler-keda/src/externalscaler.rs"
