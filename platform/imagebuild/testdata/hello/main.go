// Command hello is the image build's test subject: a small main with one module dependency
// (so the SBOM has something to list) that prints its stamped version.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
)

var version = "unset"

func main() {
	fs := pflag.NewFlagSet("hello", pflag.ContinueOnError)
	name := fs.String("name", "world", "who to greet")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	fmt.Printf("hello %s from %s\n", *name, version)
}
