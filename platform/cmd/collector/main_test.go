package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The collector's image is rebuilt, and the collector restarted with an empty store, when
// any package it is compiled from changes: it must not be compiled from the shop or its
// services, or every change to a context would throw away the traces of the runs before it.
func TestCollectorDoesNotDependOnTheShop(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"/mitosis/shop/", "/mitosis/services/", "/mitosis/platform/topology"} {
			if strings.Contains(p+"/", banned) {
				t.Errorf("the collector is compiled from %s", p)
			}
		}
	}
}
