// Command fuzzsum is `make fuzz`: it runs every fuzz target of the module for -fuzztime
// each, one after the other (a fuzz run takes all the cores it is given), streams go test's
// output, and ends with one line per target: target, package, execs, result. It exits 1 if
// any target failed.
//
// A failing input is kept where go test writes it, testdata/fuzz/<Target>/ in the target's
// package, so that the next `go test` replays it as a seed until the bug is fixed; nothing
// here deletes it.
//
//	go run ./tests/fuzzsum -fuzztime 30s ./...
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// result is one target's run.
type result struct {
	target, pkg string
	dir         string // the package's directory, relative to the working directory
	execs       string
	outcome     string // ok, new-crasher, failed (no crasher: a build or seed failure)
	crasher     string
	took        time.Duration
}

var (
	// "fuzz: elapsed: 30s, execs: 1234567 (41152/sec), new interesting: 3 (total: 12)"
	reExecs = regexp.MustCompile(`fuzz: elapsed: \S+, execs: (\d+)`)
	// "Failing input written to testdata/fuzz/FuzzParse/582528ddfad69eb5"
	reCrasher = regexp.MustCompile(`Failing input written to (\S+)`)
)

func main() {
	fuzztime := flag.String("fuzztime", "30s", "go test -fuzztime for each target")
	flag.Parse()
	patterns := flag.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := run(ctx, *fuzztime, patterns, os.Stdout)
	summary(os.Stdout, results)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fuzzsum:", err)
		os.Exit(1)
	}
	for _, r := range results {
		if r.outcome != "ok" {
			os.Exit(1)
		}
	}
}

func run(ctx context.Context, fuzztime string, patterns []string, out io.Writer) ([]result, error) {
	list, err := exec.CommandContext(ctx, "go", append([]string{"list", "-f", "{{.ImportPath}}\t{{.Dir}}"}, patterns...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	wd, _ := os.Getwd()
	var results []result
	for _, line := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		pkg, dir, _ := strings.Cut(line, "\t")
		if rel, err := filepath.Rel(wd, dir); err == nil {
			dir = rel
		}
		targets, err := fuzzTargets(ctx, pkg)
		if err != nil {
			results = append(results, result{target: "(list)", pkg: pkg, outcome: "failed"})
			fmt.Fprintf(out, "== %s: %v\n", pkg, err)
			continue
		}
		for _, t := range targets {
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			r := fuzz(ctx, pkg, t, fuzztime, out)
			r.dir = dir
			results = append(results, r)
		}
	}
	return results, nil
}

// fuzzTargets lists the package's Fuzz functions without running anything.
func fuzzTargets(ctx context.Context, pkg string) ([]string, error) {
	b, err := exec.CommandContext(ctx, "go", "test", "-list", "^Fuzz", pkg).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -list: %w: %s", err, b)
	}
	var ts []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Fuzz") {
			ts = append(ts, strings.TrimSpace(line))
		}
	}
	return ts, nil
}

func fuzz(ctx context.Context, pkg, target, fuzztime string, out io.Writer) result {
	fmt.Fprintf(out, "== %s %s\n", pkg, target)
	r := result{target: target, pkg: pkg, execs: "?"}
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-fuzz", "^"+target+"$", "-fuzztime", fuzztime, pkg)
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(out, &buf)
	cmd.Stderr = cmd.Stdout
	err := cmd.Run()
	r.took = time.Since(start)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		if m := reExecs.FindStringSubmatch(sc.Text()); m != nil {
			r.execs = m[1] // the last progress line is the total
		}
		if m := reCrasher.FindStringSubmatch(sc.Text()); m != nil {
			r.crasher = m[1]
		}
	}
	switch {
	case err == nil:
		r.outcome = "ok"
	case r.crasher != "":
		r.outcome = "new-crasher"
	default:
		r.outcome = "failed"
	}
	return r
}

func summary(w io.Writer, results []result) {
	fmt.Fprintln(w, "\n== fuzz summary")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tpackage\texecs\tresult\ttook")
	for _, r := range results {
		outcome := r.outcome
		if r.crasher != "" {
			outcome += " (" + filepath.Join(r.dir, r.crasher) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.target, r.pkg, r.execs, outcome, r.took.Round(time.Second))
	}
	_ = tw.Flush()
}
