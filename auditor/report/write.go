package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/marginaudit/marginaudit/internal/atomicfile"
)

// Files of a report directory.
const (
	IndexFile   = "index.html"   // the page, written last
	SummaryFile = "summary.json" // the Observations
	FiguresDir  = "figures"      // NAME.png and NAME.svg of every figure
)

// ErrNoAudits is returned by Write when it is given no audit.
var ErrNoAudits = errors.New("report: no audit to report")

// Audit names an audit directory, as written by auditor.Store, and the label
// under which the report shows it (such as "standard" or "adversarial").
type Audit struct {
	Label string // unique among the audits of a report; the folder's name when empty
	Dir   string
}

// Options tune a report. The zero value is usable.
type Options struct {
	// Epochs are the epochs of the margin histograms. Epochs that were not
	// audited are skipped with a note. Default: the first, second, middle
	// and last audited epochs.
	Epochs []int
	// Standard is the label of the audit of standard training, the
	// denominator of the ratio of mean margins (observation 2). Default
	// "standard".
	Standard string
	// Refined makes every statistic and figure use the refined margins
	// (margin_refined: FMN's, or a bisection's in audits made before FMN)
	// instead of the DeepFool margins; every successful attack must then
	// have one.
	Refined bool
	// Alpha is the significance level of the report's sentences (a trend,
	// a difference between correct and incorrect images). Default 0.05.
	// The p-values themselves are reported uncorrected for the number of
	// tests.
	Alpha float64
	// Models makes the audits a model set even when their checkpoints
	// have epochs: each audit must then hold one checkpoint. Without it,
	// audits form a model set when there are two or more, each holding
	// one checkpoint without an epoch.
	Models bool
	// Baseline is the label of the model of a model set that the others
	// are paired with. Default: the first audit.
	Baseline string
	// DataDir is where the gallery reads the clean images of audits of a
	// named data set, as `audit --data-dir`; "" finds them where the audit
	// does by default.
	DataDir string
}

func (o *Options) withDefaults() Options {
	out := *o
	if out.Standard == "" {
		out.Standard = "standard"
	}
	if out.Alpha == 0 {
		out.Alpha = 0.05
	}
	return out
}

// Write reads the audit directories, computes the observations, and writes
// the report into outDir (created when needed):
//
//	figures/NAME.png, figures/NAME.svg   every figure (see Figure)
//	summary.json                         the Observations (schema in the package documentation)
//	index.html                           one static page: figures, captions, observations
//
// Each file is written atomically (a temporary file renamed over the final
// name), index.html last, so a reader never sees half a file, and a page
// that refers to figures of the same run. Write checks ctx between figures
// and returns ctx.Err() when it is cancelled. Errors name the file concerned.
func Write(ctx context.Context, audits []Audit, outDir string, opts Options) (*Observations, error) {
	if len(audits) == 0 {
		return nil, ErrNoAudits
	}
	opts = opts.withDefaults()
	if !(opts.Alpha > 0 && opts.Alpha < 1) {
		return nil, fmt.Errorf("report: alpha %v is not in (0, 1)", opts.Alpha)
	}
	audits = slices.Clone(audits)
	labels := map[string]bool{}
	for i := range audits {
		a := &audits[i]
		if a.Label == "" {
			a.Label = filepath.Base(filepath.Clean(a.Dir))
		}
		if labels[a.Label] {
			return nil, fmt.Errorf("report: two audits are labelled %q", a.Label)
		}
		labels[a.Label] = true
	}

	var notes []string
	loaded := make([]*audit, len(audits))
	slugs := map[string]bool{}
	for i, a := range audits {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l, n, err := load(a, opts.Refined)
		if err != nil {
			return nil, err
		}
		l.slug = uniqueSlug(a.Label, slugs)
		loaded[i] = l
		notes = append(notes, n...)
	}

	set, err := modelSet(loaded, &opts)
	if err != nil {
		return nil, err
	}
	obs, n := observe(loaded, &opts)
	notes = append(notes, n...)
	if set {
		if obs.ModelSet, err = observeModelSet(loaded, &opts); err != nil {
			return nil, err
		}
	}

	if err := os.MkdirAll(filepath.Join(outDir, FiguresDir), 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	figs, n, err := drawFigures(ctx, loaded, obs, outDir, &opts)
	if err != nil {
		return nil, err
	}
	notes = append(notes, n...)
	obs.Figures = figs
	obs.Notes = append(obs.Notes, notes...)

	if err := writeFile(filepath.Join(outDir, SummaryFile), func(w io.Writer) error {
		return writeJSON(w, obs)
	}); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(outDir, IndexFile), func(w io.Writer) error {
		return writeHTML(w, obs, loaded, outDir)
	}); err != nil {
		return nil, err
	}
	return obs, nil
}

// ReadObservations reads a report's summary.json; name (usually the file
// name) appears in errors. It rejects another format or a newer version.
func ReadObservations(r io.Reader, name string) (*Observations, error) {
	var o Observations
	if err := json.NewDecoder(r).Decode(&o); err != nil {
		return nil, fmt.Errorf("report: %s: %w", name, err)
	}
	if o.Format != ObservationsFormat {
		return nil, fmt.Errorf("report: %s: format %q, want %q", name, o.Format, ObservationsFormat)
	}
	if o.Version > ObservationsVersion {
		return nil, fmt.Errorf("report: %s: version %d is newer than %d", name, o.Version, ObservationsVersion)
	}
	return &o, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// uniqueSlug returns label reduced to lower-case letters, digits, '-' and
// '_', different from the slugs already taken.
func uniqueSlug(label string, taken map[string]bool) string {
	var b strings.Builder
	for _, r := range strings.ToLower(label) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = "audit"
	}
	base := s
	for i := 2; taken[s]; i++ {
		s = fmt.Sprintf("%s-%d", base, i)
	}
	taken[s] = true
	return s
}

// writeFile writes the report's file path through fn, atomically and with
// mode 0644 (see package atomicfile).
func writeFile(path string, fn func(io.Writer) error) error {
	if err := atomicfile.Write(path, 0o644, fn); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
