package bundle

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestZipHoldsAnExecutableBootstrap(t *testing.T) {
	bin := writeFile(t, t.TempDir(), "anything", "#!/bin/sh\necho hi\n", 0o600)
	var a, b bytes.Buffer
	if err := Zip(&a, bin); err != nil {
		t.Fatal(err)
	}
	if err := Zip(&b, bin); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two zips of the same binary differ: deployments would churn")
	}
	zr, err := zip.NewReader(bytes.NewReader(a.Bytes()), int64(a.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 {
		t.Fatalf("%d entries, want only bootstrap", len(zr.File))
	}
	f := zr.File[0]
	if f.Name != "bootstrap" || f.Mode().Perm() != 0o755 || !f.Modified.Equal(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("entry %s mode %v modified %v", f.Name, f.Mode(), f.Modified)
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); string(got) != "#!/bin/sh\necho hi\n" {
		t.Errorf("content %q", got)
	}
}

func TestExtract(t *testing.T) {
	dir := t.TempDir()
	bin := writeFile(t, dir, "bin", "payload", 0o755)
	zipPath := filepath.Join(dir, "fn.zip")
	zf, err := os.Create(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := Zip(zf, bin); err != nil {
		t.Fatal(err)
	}
	zf.Close()
	out, err := Extract(zipPath, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm()&0o111 == 0 {
		t.Fatalf("extracted %v %v: want an executable", st, err)
	}

	t.Run("rejects a bootstrap without the executable bit", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "bad.zip")
		f, _ := os.Create(p)
		zw := zip.NewWriter(f)
		h := &zip.FileHeader{Name: "bootstrap"}
		h.SetMode(0o644)
		w, _ := zw.CreateHeader(h)
		_, _ = w.Write([]byte("x"))
		zw.Close()
		f.Close()
		if _, err := Extract(p, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not executable") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("rejects a zip without bootstrap", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "empty.zip")
		f, _ := os.Create(p)
		zip.NewWriter(f).Close()
		f.Close()
		if _, err := Extract(p, t.TempDir()); err == nil || !strings.Contains(err.Error(), "has no bootstrap") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestZipRejectsAFolder(t *testing.T) {
	if err := Zip(io.Discard, t.TempDir()); err == nil {
		t.Fatal("zipped a folder")
	}
}

func TestBuildArgs(t *testing.T) {
	args := BuildArgs("./functions/x", "out/bootstrap")
	for _, want := range [][]string{{"-tags", "lambda.norpc"}, {"-trimpath"}, {"-ldflags=-s -w"}, {"-o", "out/bootstrap"}} {
		i := slices.Index(args, want[0])
		if i < 0 || !slices.Equal(args[i:i+len(want)], want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if args[len(args)-1] != "./functions/x" {
		t.Errorf("package not last: %q", args)
	}
}

func TestPackageReportsBuildFailure(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool")
	}
	out := t.TempDir()
	_, err := Package(context.Background(), Options{Dir: "../.."}, "nope", "./functions/does-not-exist", out)
	if err == nil || !strings.Contains(err.Error(), "./functions/does-not-exist") || !strings.Contains(err.Error(), "linux/arm64") {
		t.Fatalf("err = %v, want the package and target named", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("failed build left %d files in %s", len(entries), out)
	}
}
