// Package proto holds the protobuf definitions of the services (one directory per context,
// versioned: catalog/v1/catalog.proto ...) and generate.sh, which regenerates their Go code
// into services/gen. Its test fails when the committed code is not what generate.sh makes.
package proto
