// Package bundle builds a function's Lambda deployment package: the function's main
// package compiled as a static `bootstrap` (the executable the provided.al2023 runtime
// starts) and zipped alone at the root of the archive, executable, with fixed timestamps so
// the same binary always gives the same zip (and SAM sees no change to deploy).
package bundle

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// BootstrapName is the file the provided.* runtimes execute.
const BootstrapName = "bootstrap"

// Options say how to build.
type Options struct {
	Go     string // the go tool; "" finds it on PATH
	Dir    string // the module root the package is built in; "" is the current directory
	GOOS   string // "" is linux
	GOARCH string // "" is arm64 (Graviton: cheaper per GB-second than x86_64)
	// Env is the base environment of the go tool; nil is os.Environ(). GOOS, GOARCH and
	// CGO_ENABLED are always set over it.
	Env []string
}

func (o Options) goos() string {
	if o.GOOS == "" {
		return "linux"
	}
	return o.GOOS
}

func (o Options) goarch() string {
	if o.GOARCH == "" {
		return "arm64"
	}
	return o.GOARCH
}

// BuildArgs are the go build arguments for pkg into out. lambda.norpc drops aws-lambda-go's
// net/rpc mode, which only the retired go1.x runtime used.
func BuildArgs(pkg, out string) []string {
	return []string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, pkg}
}

// Build compiles pkg (an import path or ./relative path) as a static binary at out.
func Build(ctx context.Context, o Options, pkg, out string) error {
	goTool := o.Go
	if goTool == "" {
		var err error
		if goTool, err = exec.LookPath("go"); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	cmd := exec.CommandContext(ctx, goTool, BuildArgs(pkg, out)...)
	cmd.Dir = o.Dir
	cmd.Env = append(env, "GOOS="+o.goos(), "GOARCH="+o.goarch(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bundle: go build %s (%s/%s): %w\n%s", pkg, o.goos(), o.goarch(), err, stderr.Bytes())
	}
	return nil
}

// zipTime is the timestamp of every entry: the zip epoch, so archives are reproducible.
var zipTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Zip writes a deployment package holding bootstrap (a file path) as an executable
// "bootstrap" at the archive's root.
func Zip(w io.Writer, bootstrap string) error {
	f, err := os.Open(bootstrap)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("bundle: %s is not a regular file", bootstrap)
	}
	zw := zip.NewWriter(w)
	hdr := &zip.FileHeader{Name: BootstrapName, Method: zip.Deflate, Modified: zipTime}
	// Lambda runs bootstrap as is: without the executable bit in the entry's Unix mode,
	// the instance fails with "permission denied" before the first invocation.
	hdr.SetMode(0o755)
	ew, err := zw.CreateHeader(hdr)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if _, err := io.Copy(ew, f); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// Package builds pkg and writes outDir/<name>.zip, returning the zip's path. The binary is
// built in a temporary folder that is removed afterwards.
func Package(ctx context.Context, o Options, name, pkg, outDir string) (string, error) {
	tmp, err := os.MkdirTemp("", "bundle-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, BootstrapName)
	if err := Build(ctx, o, pkg, bin); err != nil {
		return "", err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	dst := filepath.Join(outDir, name+".zip")
	// Write beside the destination and rename: a half-written zip is never left at dst.
	f, err := os.CreateTemp(outDir, "."+name+"-*.zip")
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	defer os.Remove(f.Name())
	if err := errors.Join(Zip(f, bin), f.Close()); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	return dst, nil
}

// Extract writes the bootstrap of the deployment package at zipPath into dir, with the mode
// the archive records, and returns its path: what Lambda does before it starts an instance.
func Extract(zipPath, dir string) (string, error) {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name != BootstrapName {
			continue
		}
		if f.Mode()&0o111 == 0 {
			return "", fmt.Errorf("bundle: %s: bootstrap is not executable (mode %v)", zipPath, f.Mode())
		}
		rc, err := f.Open()
		if err != nil {
			return "", fmt.Errorf("bundle: %w", err)
		}
		defer rc.Close()
		dst := filepath.Join(dir, BootstrapName)
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, f.Mode().Perm())
		if err != nil {
			return "", fmt.Errorf("bundle: %w", err)
		}
		if _, err := io.Copy(out, rc); err != nil {
			out.Close()
			return "", fmt.Errorf("bundle: %w", err)
		}
		return dst, out.Close()
	}
	return "", fmt.Errorf("bundle: %s has no %s: %w", zipPath, BootstrapName, fs.ErrNotExist)
}
