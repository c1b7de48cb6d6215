package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progressBar renders a long job's progress on stderr: a line rewritten in
// place when stderr is a terminal, otherwise a line every progressEvery,
// nothing at all with -q. It is used by one goroutine at a time.
type progressBar struct {
	w     io.Writer
	quiet bool
	tty   bool
	label string
	unit  string
	total int
	done  int
	start time.Time
	last  time.Time
	shown bool // a \r line is on screen and needs a newline before others
}

// progressEvery is how often progress is printed when stderr is not a
// terminal (a log file), and ttyEvery how often it is redrawn on a terminal.
const (
	progressEvery = 10 * time.Second
	ttyEvery      = 200 * time.Millisecond
)

func newProgressBar(w io.Writer, quiet bool) *progressBar {
	p := &progressBar{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// begin starts counting toward total units (e.g. "images") under label.
func (p *progressBar) begin(label string, total int, unit string) {
	p.label, p.total, p.unit, p.done = label, total, unit, 0
	p.start, p.last = time.Now(), time.Now()
}

// add counts n units done and redraws when it is time; extra follows the
// counts (e.g. "loss 0.31").
func (p *progressBar) add(n int, extra string) {
	p.done += n
	if p.quiet {
		return
	}
	now := time.Now()
	every := progressEvery
	if p.tty {
		every = ttyEvery
	}
	if now.Sub(p.last) < every && p.done < p.total {
		return
	}
	p.last = now
	line := p.status(now, extra)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// status formats "label  done/total unit  rate unit/s  ETA  extra".
func (p *progressBar) status(now time.Time, extra string) string {
	elapsed := now.Sub(p.start).Seconds()
	s := fmt.Sprintf("%s  %d/%d %s", p.label, p.done, p.total, p.unit)
	if elapsed > 0 && p.done > 0 {
		rate := float64(p.done) / elapsed
		s += fmt.Sprintf("  %.0f %s/s", rate, p.unit)
		if left := p.total - p.done; left > 0 {
			s += fmt.Sprintf("  ETA %s", (time.Duration(float64(left)/rate) * time.Second).Round(time.Second))
		}
	}
	if extra != "" {
		s += "  " + extra
	}
	return s
}

// println prints a line of its own (a per-epoch or per-checkpoint summary),
// clearing the progress line first. It prints even with -q only when force
// is set.
func (p *progressBar) println(force bool, format string, args ...any) {
	if p.quiet && !force {
		return
	}
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// warn prints a warning line, "marginaudit: warning: …", even with -q:
// a warning says that results may not mean what they seem.
func (p *progressBar) warn(format string, args ...any) {
	p.println(true, progName+": warning: "+format, args...)
}
