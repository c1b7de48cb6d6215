package compare

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteText writes r as plain-text tables: the two models, the margins,
// the clean and robust accuracies, and the gates' verdicts.
func WriteText(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "baseline\t%s (%s, epoch %d)\n", r.Baseline.Dir, r.Baseline.Checkpoint, r.Baseline.Epoch)
	fmt.Fprintf(tw, "candidate\t%s (%s, epoch %d)\n", r.Candidate.Dir, r.Candidate.Checkpoint, r.Candidate.Epoch)
	kind := "margins of the images attacked successfully on both (failed: attacks that failed"
	if r.Refined {
		kind = "refined margins of the images with one on both, DeepFool's failures included (failed: images censored, flipped by no attack,"
	}
	level := strconv.FormatFloat(100*r.Level, 'g', -1, 64) + "%"
	fmt.Fprintf(tw, "\n%s on the baseline only/candidate only/both, left out;\n"+
		"change: candidate − baseline, %s t-interval; dropped: share of images whose margin dropped; p: Wilcoxon signed-rank)\n", kind, level)
	fmt.Fprintf(tw, "split\tnorm\tpairs\tfailed\tbaseline\tcandidate\tchange\t%s CI\trelative\tdropped\tp\n", level)
	for _, m := range r.Margins {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d/%d\t%s\t%s\t%s\t[%s, %s]\t%s\t%s\t%s\n", m.Split, m.Norm, m.Pairs,
			m.BaselineFailed, m.CandidateFailed, m.BothFailed, num(m.BaselineMean), num(m.CandidateMean), signed(m.Change),
			signed(m.ChangeLo), signed(m.ChangeHi), percent(m.RelativeChange), share(m.DroppedShare), pValue(m.Wilcoxon.P, m.Wilcoxon.Method))
	}
	fmt.Fprintf(tw, "\nclean accuracy (p: McNemar)\n")
	fmt.Fprintf(tw, "split\timages\tbaseline\tcandidate\tchange\tlost\tgained\tp\n")
	for _, a := range r.Accuracy {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\n", a.Split, a.Images, num(a.Baseline), num(a.Candidate), signed(a.Change),
			a.McNemar.Lost, a.McNemar.Gained, pValue(a.McNemar.P, a.McNemar.Method))
	}
	if len(r.Robust) > 0 {
		fmt.Fprintf(tw, "\nPGD robust accuracy (p: McNemar, where the audits recorded which images are robust)\n")
		fmt.Fprintf(tw, "split\tnorm\teps\timages\tbaseline\tcandidate\tchange\tlost\tgained\tp\n")
		for _, a := range r.Robust {
			lost, gained, p := "-", "-", "-"
			if m := a.McNemar; m != nil {
				lost, gained, p = strconv.Itoa(m.Lost), strconv.Itoa(m.Gained), pValue(m.P, m.Method)
			}
			fmt.Fprintf(tw, "%s\t%s\t%g\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Split, a.Norm, a.Eps, a.Images, num(a.Baseline), num(a.Candidate),
				signed(a.Change), lost, gained, p)
		}
	}
	if len(r.Gates) > 0 {
		fmt.Fprintf(tw, "\ngates\n")
		for _, g := range r.Gates {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(g.Status), g.Gate, g.Message)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("compare: writing the comparison: %w", err)
	}
	return nil
}

func undefined(v Float) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }

func num(v Float) string {
	if undefined(v) {
		return "-"
	}
	return strconv.FormatFloat(float64(v), 'f', 4, 64)
}

func signed(v Float) string {
	if undefined(v) {
		return "-"
	}
	return fmt.Sprintf("%+.4f", float64(v))
}

func percent(v Float) string {
	if undefined(v) {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", 100*float64(v))
}

func share(v Float) string {
	if undefined(v) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(v))
}

func pValue(p Float, m Method) string {
	if undefined(p) {
		return "-"
	}
	return fmt.Sprintf("%.3g (%s)", float64(p), m)
}
