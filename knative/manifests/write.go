package manifests

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// ownedDirs are the folders under knative/ that hold generated files, beside .ko.yaml. Write
// never looks anywhere else, so the generator's Go code and other tools' folders are safe.
var ownedDirs = []string{"base", "overlays", "secrets"}

// Write writes files under dir and removes the generated files there that files no longer
// has. It returns the paths it changed and the ones it removed.
func Write(dir string, files map[string][]byte) (changed, removed []string, err error) {
	stale, err := Stale(dir, files)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range stale {
		if err := os.Remove(filepath.Join(dir, p)); err != nil {
			return changed, removed, err
		}
		removed = append(removed, p)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if old, err := os.ReadFile(full); err == nil && bytes.Equal(old, files[p]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return changed, removed, err
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil {
			return changed, removed, err
		}
		changed = append(changed, p)
	}
	for _, d := range ownedDirs {
		removeEmptyDirs(filepath.Join(dir, d))
	}
	return changed, removed, nil
}

// Stale lists the generated files under dir (by their header) that files does not hold.
func Stale(dir string, files map[string][]byte) ([]string, error) {
	var stale []string
	check := func(full string) error {
		rel, err := filepath.Rel(dir, full)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if _, ok := files[rel]; ok {
			return nil
		}
		b, err := os.ReadFile(full)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(b, []byte(Header)) {
			stale = append(stale, rel)
		}
		return nil
	}
	if err := check(filepath.Join(dir, ".ko.yaml")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, d := range ownedDirs {
		err := filepath.WalkDir(filepath.Join(dir, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.Type().IsRegular() {
				return check(p)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	slices.Sort(stale)
	return stale, nil
}

// removeEmptyDirs removes dir's empty subfolders, deepest first, and dir if it ends empty.
func removeEmptyDirs(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeEmptyDirs(filepath.Join(dir, e.Name()))
		}
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
		_ = os.Remove(dir)
	}
}
