package local

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"sync"
)

// output interleaves the children's stdout and stderr on one writer, line by line, each line
// prefixed by the process name padded to a common width.
type output struct {
	mu    sync.Mutex // serialises writes to w so lines never mix
	w     io.Writer
	width int
}

func newOutput(w io.Writer, names []string) *output {
	o := &output{w: w, width: len("redis")}
	for _, n := range names {
		o.width = max(o.width, len(n))
	}
	return o
}

// writer returns a fresh line writer for one stream of the named process.
func (o *output) writer(name string) *lineWriter {
	return &lineWriter{o: o, prefix: []byte(fmt.Sprintf("%-*s | ", o.width, name))}
}

// flush writes what cmd's streams left without a final newline.
func (o *output) flush(cmd *exec.Cmd) {
	for _, w := range []io.Writer{cmd.Stdout, cmd.Stderr} {
		if lw, ok := w.(*lineWriter); ok {
			lw.Flush()
		}
	}
}

// maxLine bounds a line kept waiting for its newline.
const maxLine = 64 << 10

type lineWriter struct {
	o      *output
	prefix []byte
	mu     sync.Mutex
	buf    []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i+1])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) >= maxLine {
		l.emit(append(l.buf, '\n'))
		l.buf = nil
	}
	if len(l.buf) == 0 {
		l.buf = nil // let a large burst's array go
	}
	return len(b), nil
}

// Flush writes a trailing partial line.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(append(l.buf, '\n'))
		l.buf = nil
	}
}

func (l *lineWriter) emit(line []byte) {
	l.o.mu.Lock()
	defer l.o.mu.Unlock()
	out := make([]byte, 0, len(l.prefix)+len(line))
	out = append(append(out, l.prefix...), line...)
	_, _ = l.o.w.Write(out)
}
