#!/usr/bin/env bash
# Regenerates the Go code of every .proto under services/proto into services/gen (or into the
# directory given as the first argument, which the freshness test uses).
#
# Nothing comes from the system: buf (the compiler, which reads the protos' edition 2023 and
# ships the well-known types they import) is pinned as a tool of its own module, tool/go.mod,
# apart from services/go.mod so that its dependencies never move the services' own; the two
# Go plugins are pinned as tool directives in services/go.mod, so that the generated code
# matches the protobuf and gRPC runtime the services build with. The first run builds buf
# (about two minutes of CPU); the Go build cache keeps it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
services=$(dirname "$here")
out=${1:-$services/gen}
mkdir -p "$out"
out=$(cd "$out" && pwd)

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd "$services" &&
	go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go &&
	go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc)
# The tool module is not in the repository's go.work.
(cd "$here/tool" && GOWORK=off GOFLAGS=-buildvcs=false go build -o "$bin/buf" github.com/bufbuild/buf/cmd/buf)

cd "$here"
PATH="$bin:$PATH" BUF_CACHE_DIR="$bin/cache" buf generate --template buf.gen.yaml --output "$out" .
