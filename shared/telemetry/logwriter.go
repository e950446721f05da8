package telemetry

import (
	"io"
	"sync"
	"time"
)

// BufferedWriter takes a high-rate log (the gateway's access log: one line per request) off
// the request's path: Write only appends to a buffer in memory, and a background goroutine
// writes the buffer to the underlying writer in batches, every interval or as soon as
// flushBytes have gathered. Without it every line is a write(2) on the request's goroutine
// before the answer leaves (ReverseProxy's answer is flushed only when the handler returns),
// and a slow reader of stderr (a full pipe) would hold up requests.
//
// Each Write's bytes stay together and in order (slog handlers write whole lines). Memory is
// bounded: a writer that finds maxBuffered bytes waiting writes them out itself, so a sink that
// cannot keep up slows the writers down as an unbuffered one would, instead of growing the
// buffer. Lines still buffered when the process dies are lost (at most interval's worth); Close
// writes out the rest and must run before exit.
type BufferedWriter struct {
	w        io.Writer
	interval time.Duration

	mu     sync.Mutex // guards buf, spare, closed
	buf    []byte
	spare  []byte
	closed bool

	wmu sync.Mutex // held while writing to w, so that batches keep their order

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

const (
	flushBytes  = 32 << 10
	maxBuffered = 1 << 20
)

// NewBufferedWriter starts a writer that writes to w at least every interval (default 100ms).
func NewBufferedWriter(w io.Writer, interval time.Duration) *BufferedWriter {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	b := &BufferedWriter{w: w, interval: interval, buf: make([]byte, 0, 2*flushBytes), spare: make([]byte, 0, 2*flushBytes),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// Write buffers p; it never fails (an error writing a batch is the sink's, and a logger could
// not act on it anyway).
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.wmu.Lock()
		defer b.wmu.Unlock()
		return b.w.Write(p)
	}
	if len(b.buf)+len(p) > maxBuffered {
		b.mu.Unlock()
		_ = b.Flush() // backpressure: the sink is behind
		b.mu.Lock()
	}
	b.buf = append(b.buf, p...)
	full := len(b.buf) >= flushBytes
	b.mu.Unlock()
	if full {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Flush writes out what is buffered.
func (b *BufferedWriter) Flush() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	out := b.buf
	b.buf, b.spare = b.spare[:0], nil
	b.mu.Unlock()
	var err error
	if len(out) > 0 {
		_, err = b.w.Write(out)
	}
	if cap(out) > 4*flushBytes {
		out = make([]byte, 0, 2*flushBytes) // a burst grew it: do not keep the memory
	}
	b.mu.Lock()
	b.spare = out[:0]
	b.mu.Unlock()
	return err
}

// Close writes out the rest and stops the background writer; later writes go straight to the
// underlying writer.
func (b *BufferedWriter) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	return b.Flush()
}

func (b *BufferedWriter) run() {
	defer close(b.done)
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		case <-b.kick:
		}
		_ = b.Flush()
	}
}
