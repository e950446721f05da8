package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// GoBench is the Go benchmarks' run: the command, its raw output, benchstat's summary and
// our own median and range per benchmark and unit.
type GoBench struct {
	Command   string        `json:"command"`
	Raw       string        `json:"raw"`
	Benchstat string        `json:"benchstat,omitempty"`
	BenchErr  string        `json:"benchstat_error,omitempty"`
	Results   []BenchResult `json:"results"`
}

// BenchResult is one benchmark and unit over the -count runs.
type BenchResult struct {
	Package string    `json:"package"`
	Name    string    `json:"name"`
	Unit    string    `json:"unit"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Values  []float64 `json:"values"`
}

func runGoBenchmarks(ctx context.Context, o options, dir string) (*GoBench, error) {
	args := []string{"test", "-run", "^$", "-bench", o.benchRegexp, "-benchmem", "-count", strconv.Itoa(o.benchCount), "-benchtime", o.benchTime}
	args = append(args, strings.Split(o.benchPkgs, ",")...)
	g := &GoBench{Command: "go " + quoteArgs(args)}
	cmd := exec.CommandContext(ctx, "go", args...)
	var out bytes.Buffer
	cmd.Dir, cmd.Stdout, cmd.Stderr = o.moduleDir, io.MultiWriter(&out, o.log), o.log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w", g.Command, err)
	}
	g.Raw = out.String()
	g.Results = parseBench(g.Raw)
	if len(g.Results) == 0 {
		return nil, fmt.Errorf("%s printed no benchmark results", g.Command)
	}
	if o.benchstat != "" {
		f := filepath.Join(dir, "gobench.txt")
		if err := os.WriteFile(f, out.Bytes(), 0o644); err != nil {
			return nil, err
		}
		bs := exec.CommandContext(ctx, "go", "run", o.benchstat, f)
		bs.Dir = o.moduleDir
		var stderr bytes.Buffer
		bs.Stderr = &stderr
		if b, err := bs.Output(); err != nil {
			g.BenchErr = strings.TrimSpace(fmt.Sprintf("%v: %s", err, stderr.String()))
		} else {
			g.Benchstat = strings.ReplaceAll(string(b), f, "gobench.txt")
		}
	}
	return g, nil
}

// parseBench reads the standard benchmark format: "pkg: <path>" lines, then
// "BenchmarkName-N <iterations> <value> <unit> [<value> <unit>]...".
func parseBench(text string) []BenchResult {
	type key struct{ pkg, name, unit string }
	var order []key
	vals := map[key][]float64{}
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			k := key{pkg, name, f[i+1]}
			if _, seen := vals[k]; !seen {
				order = append(order, k)
			}
			vals[k] = append(vals[k], v)
		}
	}
	out := make([]BenchResult, 0, len(order))
	for _, k := range order {
		v := vals[k]
		s := slices.Clone(v)
		slices.Sort(s)
		med := s[len(s)/2]
		if len(s)%2 == 0 {
			med = (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		out = append(out, BenchResult{Package: k.pkg, Name: k.name, Unit: k.unit, Median: med, Min: s[0], Max: s[len(s)-1], Values: v})
	}
	return out
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " ^$|()*?'\"") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
