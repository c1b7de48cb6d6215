package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/auditor"
)

// Text returns the observations as short plain-text sentences with the
// numbers behind them, one line per audit, split and norm, followed by the
// notes: what the CLI prints at the end of a report. Observations (2) to (4)
// are stated at the last epoch where they are defined (for (3) and (4), the
// last with both misclassified and correctly classified images); the
// summary.json has every epoch. A model set is stated instead as the
// margins per model, the pairs with its baseline, and (3) and (4) per
// model.
func (o *Observations) Text() string {
	var b strings.Builder
	for _, sec := range o.sections() {
		b.WriteString(sec.Heading)
		b.WriteString("\n")
		for _, s := range sec.Lines {
			b.WriteString("  ")
			b.WriteString(s)
			b.WriteString("\n")
		}
	}
	if len(o.Notes) > 0 {
		b.WriteString("Notes:\n")
		for _, n := range o.Notes {
			b.WriteString("  - ")
			b.WriteString(n)
			b.WriteString("\n")
		}
	}
	return b.String()
}

type section struct {
	Heading string
	Lines   []string
}

// sections states each observation as sentences; the page and Text share
// them.
func (o *Observations) sections() []section {
	marginKind := "DeepFool margins"
	if o.Margin == "margin_refined" {
		marginKind = "refined DeepFool margins"
	}
	alpha := fmtG(o.Alpha)

	s1 := section{Heading: fmt.Sprintf("(1) Mean margin after epoch 1 (%s): change from the first to the last epoch, Spearman rank correlation with the epoch:", marginKind)}
	for _, t := range o.Trend {
		verdict := map[Direction]string{
			Increasing: "increasing",
			Decreasing: "decreasing",
			NoTrend:    fmt.Sprintf("no monotone trend at the %s level", alpha),
		}[t.Direction]
		if minP := minExactP(len(t.Epochs)); t.Method == Exact && minP >= o.Alpha {
			verdict = fmt.Sprintf("too few epochs to test at the %s level (the smallest possible p is %s)", alpha, fmtP(auditor.Float(minP)))
		}
		s1.Lines = append(s1.Lines, fmt.Sprintf("%s: %s at epoch %d → %s at epoch %d (%s); ρ = %s, %s (%s, %d epochs): %s.",
			where(t.Audit, t.Split, t.Norm), fmtV(t.MeanFirst), t.FirstEpoch, fmtV(t.MeanLast), t.LastEpoch,
			fmtPct(t.RelativeChange), fmtRho(t.Rho), pEq(t.P), t.Method, len(t.Epochs), verdict))
	}
	switch {
	case len(o.Trend) > 0:
	case !slices.ContainsFunc(o.Audits, func(a AuditInfo) bool { return !a.SeparateModels }):
		s1.Lines = append(s1.Lines, "not measured: the checkpoints are separate models, not epochs of a training run.")
	default:
		s1.Lines = append(s1.Lines, "not measured: no epoch ≥ 1 with margins.")
	}

	s2 := section{Heading: "(2) Ratio of mean margins to standard training (± delta-method standard error):"}
	type rk struct {
		audit, std string
		split      auditor.Split
		norm       auditor.Norm
	}
	var rkeys []rk
	rows := map[rk][]ModelRatio{}
	for _, r := range o.AdversarialRatio {
		k := rk{r.Audit, r.Standard, r.Split, r.Norm}
		if _, ok := rows[k]; !ok {
			rkeys = append(rkeys, k)
		}
		rows[k] = append(rows[k], r)
	}
	for _, k := range rkeys {
		rs := rows[k]
		last := rs[len(rs)-1]
		// The range leaves out the initialisation, as the trend does.
		lo, hi := math.Inf(1), math.Inf(-1)
		trained := 0
		for _, r := range rs {
			if v := float64(r.Ratio); r.Epoch >= 1 && !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
				trained++
			}
		}
		line := fmt.Sprintf("%s/%s, %s split, %s: %s ± %s at epoch %d (mean %s vs %s)",
			k.audit, k.std, k.split, normName(k.norm), fmtR(last.Ratio), fmtR(last.RatioSE), last.Epoch, fmtV(last.Mean), fmtV(last.StandardMean))
		if trained > 1 {
			line += fmt.Sprintf("; %s to %s over the %d common epochs ≥ 1", fmtR(auditor.Float(lo)), fmtR(auditor.Float(hi)), trained)
		}
		s2.Lines = append(s2.Lines, line+".")
	}
	if len(o.AdversarialRatio) == 0 {
		s2.Lines = append(s2.Lines, "not measured: it needs two audits on the same data, one of them labelled as standard training.")
	}

	s3 := section{Heading: "(3) Mean margin of misclassified over correctly classified images (Mann–Whitney U test, two-sided, normal approximation):"}
	type ck struct {
		audit string
		split auditor.Split
		norm  auditor.Norm
	}
	var ckeys []ck
	inc := map[ck][]IncorrectRatio{}
	for _, r := range o.IncorrectRatio {
		k := ck{r.Audit, r.Split, r.Norm}
		if _, ok := inc[k]; !ok {
			ckeys = append(ckeys, k)
		}
		inc[k] = append(inc[k], r)
	}
	for _, k := range ckeys {
		// The last epoch with both groups: a well-trained model may
		// misclassify none of the audited training images.
		var last *IncorrectRatio
		tested, smaller, larger := 0, 0, 0
		for i, r := range inc[k] {
			if math.IsNaN(float64(r.P)) {
				continue
			}
			last = &inc[k][i]
			tested++
			if float64(r.P) < o.Alpha {
				if r.Ratio < 1 {
					smaller++
				} else {
					larger++
				}
			}
		}
		if o.ModelSet != nil {
			s3.Lines = append(s3.Lines, modelIncorrectLine(k.audit, k.split, k.norm, last))
			continue
		}
		if last == nil {
			s3.Lines = append(s3.Lines, fmt.Sprintf("%s: no %s has both misclassified and correctly classified images with margins.", where(k.audit, k.split, k.norm), o.unit(k.audit)))
			continue
		}
		line := fmt.Sprintf("%s: %s at %s (%d misclassified vs %d correct, %s); significantly below 1 at %d and above 1 at %d of %d %ss (p < %s, uncorrected).",
			where(k.audit, k.split, k.norm), fmtR(last.Ratio), o.at(k.audit, last.Epoch), last.NIncorrect, last.NCorrect, pEq(last.P), smaller, larger, tested, o.unit(k.audit), alpha)
		s3.Lines = append(s3.Lines, line)
	}

	s4 := section{Heading: "(4) AUROC of a small margin as a detector of misclassified images (0.5 is chance):"}
	det := map[ck][]Detection{}
	for _, d := range o.Detection {
		k := ck{d.Audit, d.Split, d.Norm}
		det[k] = append(det[k], d)
	}
	conf := map[string]bool{}
	for _, a := range o.Audits {
		conf[a.Label] = a.Confidence
	}
	for _, k := range ckeys {
		var last *Detection
		for i, d := range det[k] {
			if !math.IsNaN(float64(d.AUROCMargin)) {
				last = &det[k][i]
			}
		}
		if o.ModelSet != nil && last == nil {
			s4.Lines = append(s4.Lines, fmt.Sprintf("%s: undefined (the model has no misclassified or no correctly classified images with margins).", where(k.audit, k.split, k.norm)))
			continue
		}
		if last == nil {
			s4.Lines = append(s4.Lines, fmt.Sprintf("%s: undefined at every %[2]s (no %[2]s has both misclassified and correctly classified images).", where(k.audit, k.split, k.norm), o.unit(k.audit)))
			continue
		}
		line := fmt.Sprintf("%s: %s", where(k.audit, k.split, k.norm), fmtR(last.AUROCMargin))
		if o.ModelSet == nil {
			line += " at " + o.at(k.audit, last.Epoch)
		}
		switch {
		case !conf[k.audit]:
			line += fmt.Sprintf("; max-softmax baseline not measured (no %s)", auditor.ConfidenceFile)
		case math.IsNaN(float64(last.AUROCMaxSoftmax)):
			line += "; max-softmax baseline undefined"
		default:
			line += fmt.Sprintf("; max-softmax baseline %s on the same images", fmtR(last.AUROCMaxSoftmax))
		}
		s4.Lines = append(s4.Lines, line+".")
	}
	if o.ModelSet != nil {
		// A model set has no training run: no (1) and (2); the sections
		// on correct vs misclassified images lose their numbers.
		for _, s := range []*section{&s3, &s4} {
			s.Heading = strings.TrimPrefix(strings.TrimPrefix(s.Heading, "(3) "), "(4) ")
		}
		return append(o.modelSetSections(marginKind), s3, s4)
	}
	return []section{s1, s2, s3, s4}
}

// modelIncorrectLine states observation (3) for the one model of a model
// set; last is nil when it has no two groups to compare.
func modelIncorrectLine(model string, s auditor.Split, n auditor.Norm, last *IncorrectRatio) string {
	if last == nil {
		return fmt.Sprintf("%s: not measured (the model has no misclassified or no correctly classified images with margins).", where(model, s, n))
	}
	return fmt.Sprintf("%s: %s (%d misclassified vs %d correct, %s).", where(model, s, n), fmtR(last.Ratio), last.NIncorrect, last.NCorrect, pEq(last.P))
}

// at names the checkpoint of an audit at epoch e: "epoch 3", or "model
// resnet.onnx" for an audit of separate models.
func (o *Observations) at(audit string, e int) string {
	return o.unit(audit) + " " + o.point(audit, e)
}

// point is the checkpoint of an audit at epoch e: "3", or its file name
// for an audit of separate models.
func (o *Observations) point(audit string, e int) string {
	if o.ModelSet != nil {
		return audit
	}
	for _, a := range o.Audits {
		if i := slices.Index(a.Epochs, e); a.Label == audit && a.SeparateModels && i >= 0 && i < len(a.Checkpoints) {
			return a.Checkpoints[i]
		}
	}
	return strconv.Itoa(e)
}

// unit is what an audit's checkpoints are: "epoch", or "model" for
// separate models.
func (o *Observations) unit(audit string) string {
	for _, a := range o.Audits {
		if a.Label == audit && a.SeparateModels {
			return "model"
		}
	}
	return "epoch"
}

// minExactP is the smallest two-sided exact p-value of Spearman's ρ for n
// pairs without ties: 2/n!, the identity and the reversal.
func minExactP(n int) float64 {
	p := 2.0
	for i := 2; i <= n; i++ {
		p /= float64(i)
	}
	return math.Min(1, p)
}

func where(audit string, s auditor.Split, n auditor.Norm) string {
	return fmt.Sprintf("%s, %s split, %s", audit, s, normName(n))
}

// fmtV formats a margin with 4 significant digits.
func fmtV(v auditor.Float) string {
	if math.IsNaN(float64(v)) {
		return "undefined"
	}
	return fmt.Sprintf("%.4g", float64(v))
}

// fmtR formats a ratio or an AUROC with 3 decimals.
func fmtR(v auditor.Float) string {
	if math.IsNaN(float64(v)) {
		return "undefined"
	}
	return fmt.Sprintf("%.3f", float64(v))
}

func fmtRho(v auditor.Float) string {
	if math.IsNaN(float64(v)) {
		return "undefined"
	}
	return fmt.Sprintf("%+.3f", float64(v))
}

func fmtPct(v auditor.Float) string {
	if math.IsNaN(float64(v)) {
		return "relative change undefined"
	}
	return fmt.Sprintf("%+.1f%%", 100*float64(v))
}

// pEq formats "p = P", or "p < 1e-300" for a p-value that underflows.
func pEq(p auditor.Float) string {
	if p == 0 {
		return "p " + fmtP(p)
	}
	return "p = " + fmtP(p)
}

// fmtP formats a p-value: 3 decimals down to 0.001, then 2 significant
// digits in exponent form; a p-value that underflows is "< 1e-300".
func fmtP(p auditor.Float) string {
	v := float64(p)
	switch {
	case math.IsNaN(v):
		return "undefined"
	case v == 0:
		return "< 1e-300"
	case v >= 0.001:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.1e", v)
}
