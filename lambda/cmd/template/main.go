// Command template writes the AWS SAM template for the catalog to lambda/template.yaml. Run
// it from the repository root after changing the catalog:
//
//	go run ./lambda/cmd/template
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/lambda/sam"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "template:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("template", flag.ContinueOnError)
	out := fl.String("out", "lambda/template.yaml", "file to write")
	if err := fl.Parse(args); err != nil {
		return err
	}
	b, err := sam.Template(functions.Catalog(), sam.DefaultOptions())
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(*out); err == nil && bytes.Equal(old, b) {
		fmt.Fprintln(stdout, *out, "unchanged")
		return nil
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "wrote", *out)
	return nil
}
