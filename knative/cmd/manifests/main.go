// Command manifests writes the platform's Kubernetes manifests, generated from the catalog,
// under knative/ (base, overlays, secrets, .ko.yaml) and removes generated files the catalog
// no longer needs. Run it from the repository root:
//
//	go run ./knative/cmd/manifests
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/knative/manifests"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "manifests:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("manifests", flag.ContinueOnError)
	out := fl.String("out", "knative", "folder to write the manifests under")
	if err := fl.Parse(args); err != nil {
		return err
	}
	files, err := manifests.Generate(functions.Catalog(), manifests.DefaultOptions())
	if err != nil {
		return err
	}
	changed, removed, err := manifests.Write(*out, files)
	if err != nil {
		return err
	}
	for _, p := range changed {
		fmt.Fprintln(stdout, "wrote  ", p)
	}
	for _, p := range removed {
		fmt.Fprintln(stdout, "removed", p)
	}
	fmt.Fprintf(stdout, "%d files under %s, %d changed, %d removed\n", len(files), *out, len(changed), len(removed))
	return nil
}
