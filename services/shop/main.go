// Command shop runs any group of the shop's contexts: the host (services/host) with the
// contexts SHOP_GROUP names, joined by "+" ("catalog+inventory", "orders", "edge" for the
// gateway alone, "edge+cart"...). The platform runs every group of every topology with it;
// services/host.ConfigFrom lists the variables it reads.
package main

import (
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
)

// version is stamped by the build from git (-X main.version=...: the Makefile, the image build).
var version = "dev"

func main() { host.Main(bounded.Group{}, version) }
