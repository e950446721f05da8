package local

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestMergeEnv(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		base      []string
		defaults  map[string]string
		overrides []string
		want      []string
	}{
		"defaults fill gaps": {
			base:     []string{"A=1"},
			defaults: map[string]string{"B": "2", "A": "catalog"},
			want:     []string{"A=1", "B=2"},
		},
		"overrides win over user and catalog": {
			base:      []string{"PORT=9999", "X=1"},
			defaults:  map[string]string{"PORT": "1"},
			overrides: []string{"PORT=8080"},
			want:      []string{"PORT=8080", "X=1"},
		},
		"duplicates collapse, last wins, malformed dropped": {
			base: []string{"A=1", "A=2", "junk", "=x", "E="},
			want: []string{"A=2", "E="},
		},
		"defaults sorted after base": {
			defaults: map[string]string{"Z": "z", "M": "m"},
			want:     []string{"M=m", "Z=z"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := mergeEnv(tc.base, tc.defaults, tc.overrides); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLineWriterPrefixesWholeLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	o := newOutput(&buf, []string{"ab", "longer"})
	w := o.writer("ab")
	for _, chunk := range []string{"one\ntw", "o\n", "three"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	want := "ab     | one\nab     | two\nab     | three\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestRestartBackoff(t *testing.T) {
	t.Parallel()
	prev := restartBackoff(1)
	for n := 2; n < 20; n++ {
		d := restartBackoff(n)
		if d < prev || d > 10*time.Second {
			t.Fatalf("backoff(%d) = %v after %v", n, d, prev)
		}
		prev = d
	}
}
