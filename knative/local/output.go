package local

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"sync"

	"github.com/day-trade/platform/functions"
)

// output interleaves the children's stdout and stderr on one writer, line by line, each line
// prefixed by the process name padded to a common width; the lines of one write stay
// together. The gateway's development key line and the curl example under it are the
// exception: they are for the developer to read and paste, so they come out as the gateway
// wrote them, the key line starting with "API key:" (see verbatim).
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
	return &lineWriter{o: o, prefix: []byte(fmt.Sprintf("%-*s | ", o.width, name)), gateway: name == gatewayName()}
}

// gatewayName is the catalog's gateway, the one process whose key line is shown unprefixed.
var gatewayName = sync.OnceValue(func() string {
	for _, f := range functions.Catalog() {
		if f.Kind == functions.KindGateway {
			return f.Name
		}
	}
	return "gateway"
})

// The gateway's development key lines (gateway/cmd/gateway printDevKey, local mode only).
var (
	devKeyLine  = []byte("API key: ")
	devCurlLine = []byte("  curl ")
)

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
	o       *output
	prefix  []byte
	gateway bool // this is the gateway's stream: its key lines are verbatim
	mu      sync.Mutex
	buf     []byte
	out     []byte // the lines of one Write, emitted together
	keyLine bool   // the last line was the development key line
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
		l.add(l.buf[:i+1])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) >= maxLine {
		l.add(append(l.buf, '\n'))
		l.buf = nil
	}
	if len(l.buf) == 0 {
		l.buf = nil // let a large burst's array go
	}
	l.emit()
	return len(b), nil
}

// Flush writes a trailing partial line.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.add(append(l.buf, '\n'))
		l.buf = nil
		l.emit()
	}
}

// add queues one whole line, prefixed unless verbatim.
func (l *lineWriter) add(line []byte) {
	if !l.verbatim(line) {
		l.out = append(l.out, l.prefix...)
	}
	l.out = append(l.out, line...)
}

// verbatim reports whether line is the gateway's development key line, or the curl example
// right under it: a line starting "API key:" must start the developer's terminal line.
func (l *lineWriter) verbatim(line []byte) bool {
	after := l.keyLine
	l.keyLine = false
	if !l.gateway {
		return false
	}
	if bytes.HasPrefix(line, devKeyLine) {
		l.keyLine = true
		return true
	}
	return after && bytes.HasPrefix(line, devCurlLine)
}

// emit writes the queued lines in one write.
func (l *lineWriter) emit() {
	if len(l.out) == 0 {
		return
	}
	l.o.mu.Lock()
	_, _ = l.o.w.Write(l.out)
	l.o.mu.Unlock()
	if cap(l.out) > maxLine {
		l.out = nil // let a large burst's array go
	} else {
		l.out = l.out[:0] // io.Writer implementations do not retain it
	}
}
