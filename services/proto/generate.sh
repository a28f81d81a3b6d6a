#!/usr/bin/env bash
# Regenerates the Go code of every .proto under services/proto into services/gen (or into the
# directory given as the first argument, which the freshness test uses).
#
# protoc comes from Debian (apt-get install -y protobuf-compiler libprotobuf-dev: libprotoc
# 3.21.12 on Debian 12; the second package holds the well-known types that the .protos import,
# google/protobuf/*.proto). The two Go plugins are pinned as tool directives in
# services/go.mod, so the output depends on go.mod, not on whatever happens to be on PATH.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
services=$(dirname "$here")
out=${1:-$services/gen}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if ! command -v protoc >/dev/null; then
	echo "generate.sh: protoc not found; install it with: apt-get install -y protobuf-compiler libprotobuf-dev" >&2
	exit 1
fi

plugins=$(mktemp -d)
trap 'rm -rf "$plugins"' EXIT
(cd "$services" &&
	go build -o "$plugins/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go &&
	go build -o "$plugins/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc)

cd "$here"
mapfile -t protos < <(find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
protoc -I . \
	--plugin=protoc-gen-go="$plugins/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$plugins/protoc-gen-go-grpc" \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	"${protos[@]}"
