package compare

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A Metric is a measured quantity that a gate compares with a threshold.
// Drops are positive when the candidate is worse; p-values are those of
// the tests whose observed change is for the worse.
type Metric string

// The metrics of gates.
const (
	// MeanMarginDrop is the relative drop of the mean margin of the paired
	// images, (baseline − candidate)/baseline, per split and norm.
	MeanMarginDrop Metric = "mean_margin_drop"
	// DroppedShare is the share of paired images whose margin dropped.
	DroppedShare Metric = "dropped_share"
	// AccuracyDrop is baseline − candidate clean accuracy, per split.
	AccuracyDrop Metric = "accuracy_drop"
	// RobustAccuracyDrop is baseline − candidate PGD robust accuracy, per
	// split, norm and ε.
	RobustAccuracyDrop Metric = "robust_accuracy_drop"
	// MarginP is the Wilcoxon p-value of a split and norm whose margins
	// dropped (W⁻ > W⁺).
	MarginP Metric = "margin_p"
	// AccuracyP is the McNemar p-value of a split whose accuracy dropped.
	AccuracyP Metric = "accuracy_p"
	// RobustAccuracyP is the McNemar p-value of a PGD robust accuracy that
	// dropped; only audits that record which images are robust have it.
	RobustAccuracyP Metric = "robust_accuracy_p"
	// P is any of MarginP, AccuracyP and RobustAccuracyP.
	P Metric = "p"
)

// metrics lists the metrics in the order of the documentation.
var metrics = []Metric{MeanMarginDrop, DroppedShare, AccuracyDrop, RobustAccuracyDrop, MarginP, AccuracyP, RobustAccuracyP, P}

// isP reports whether m is a p-value: the gate keeps the smallest value.
func (m Metric) isP() bool { return m == P || strings.HasSuffix(string(m), "_p") }

// Gate is one term of a --fail-on list: it trips when the metric, at some
// split, norm or radius, compares with Threshold as Op says.
type Gate struct {
	Metric    Metric
	Op        string  // ">", ">=", "<" or "<="
	Threshold float64 // as written; a fraction when Percent is false
	Percent   bool    // Threshold was written with "%": it is Threshold/100
}

// String writes g as ParseGates reads it, such as "mean_margin_drop>5%".
func (g Gate) String() string {
	s := string(g.Metric) + g.Op + strconv.FormatFloat(g.Threshold, 'g', -1, 64)
	if g.Percent {
		s += "%"
	}
	return s
}

// limit returns the threshold as a fraction.
func (g Gate) limit() float64 {
	if g.Percent {
		return g.Threshold / 100
	}
	return g.Threshold
}

// trips reports whether the measured value v trips the gate.
func (g Gate) trips(v float64) bool {
	t := g.limit()
	switch g.Op {
	case ">":
		return v > t
	case ">=":
		return v >= t
	case "<":
		return v < t
	case "<=":
		return v <= t
	}
	panic("compare: gate with operator " + strconv.Quote(g.Op))
}

// GateSyntaxError is a --fail-on list that does not parse: Term is the
// offending term as written (trimmed), Offset its byte offset in the list.
type GateSyntaxError struct {
	Term   string
	Offset int
	Msg    string
}

func (e *GateSyntaxError) Error() string {
	return fmt.Sprintf("gate %q (at byte %d): %s", e.Term, e.Offset, e.Msg)
}

// ParseGates reads a comma-separated list of gates:
//
//	list   = gate { "," gate }
//	gate   = metric op number [ "%" ]
//	op     = ">" | ">=" | "<" | "<="
//	number = a finite decimal number, such as 0.02 or 5 or 1e-3
//
// Spaces around the terms and their parts are ignored; "5%" is the
// fraction 0.05. The metrics are listed at Metric. Errors are
// *GateSyntaxError values naming the term.
func ParseGates(list string) ([]Gate, error) {
	var out []Gate
	offset := 0
	for _, term := range strings.Split(list, ",") {
		start := offset + len(term) - len(strings.TrimLeft(term, " \t"))
		offset += len(term) + 1
		g, msg := parseGate(strings.TrimSpace(term))
		if msg != "" {
			return nil, &GateSyntaxError{Term: strings.TrimSpace(term), Offset: start, Msg: msg}
		}
		out = append(out, g)
	}
	return out, nil
}

// parseGate parses one trimmed term; msg says what is wrong.
func parseGate(term string) (g Gate, msg string) {
	if term == "" {
		return g, "empty term (want METRIC OP NUMBER, such as mean_margin_drop>5%)"
	}
	i := strings.IndexAny(term, "<>")
	if i < 0 {
		return g, "no comparison (want > , >= , < or <=)"
	}
	name := strings.TrimSpace(term[:i])
	g.Op = term[i : i+1]
	rest := term[i+1:]
	if strings.HasPrefix(rest, "=") {
		g.Op += "="
		rest = rest[1:]
	}
	known := false
	for _, m := range metrics {
		known = known || string(m) == name
	}
	if !known {
		names := make([]string, len(metrics))
		for k, m := range metrics {
			names[k] = string(m)
		}
		return g, fmt.Sprintf("unknown metric %q (want one of %s)", name, strings.Join(names, ", "))
	}
	g.Metric = Metric(name)
	num := strings.TrimSpace(rest)
	if p, ok := strings.CutSuffix(num, "%"); ok {
		g.Percent, num = true, strings.TrimSpace(p)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || strings.ContainsAny(num, "xXpP_") {
		return g, fmt.Sprintf("threshold %q is not a finite decimal number", num)
	}
	g.Threshold = v
	return g, ""
}

// GateResult is the verdict of one gate on a Result.
type GateResult struct {
	Gate string `json:"gate"` // as Gate.String writes it
	// Status is "pass", "fail" (the gate tripped) or "error" (nothing to
	// measure: the audits lack what the metric needs).
	Status string `json:"status"`
	// Value is the measured value that decided: the first that tripped,
	// or else the one closest to tripping (the largest drop, the smallest
	// p-value); null with status error.
	Value Float `json:"value"`
	// Where names the split, norm and radius of Value, such as "test l2"
	// or "test linf eps=0.1".
	Where string `json:"where"`
	// Message says what was measured, or why nothing was.
	Message string `json:"message"`
}

// The statuses of a GateResult.
const (
	Pass  = "pass"
	Fail  = "fail"
	Error = "error"
)

// measurement is one value of a metric and where it was measured.
type measurement struct {
	value float64
	where string
}

// measure lists the defined values of metric m in r.
func (r *Result) measure(m Metric) []measurement {
	var out []measurement
	add := func(v float64, where string) {
		if !math.IsNaN(v) {
			out = append(out, measurement{v + 0, where}) // + 0 turns a drop of −0 into 0
		}
	}
	if m == MeanMarginDrop || m == DroppedShare || m == MarginP || m == P {
		for _, d := range r.Margins {
			where := fmt.Sprintf("%s %s", d.Split, d.Norm)
			switch {
			case m == MeanMarginDrop:
				add(-float64(d.RelativeChange), where)
			case m == DroppedShare:
				add(float64(d.DroppedShare), where)
			case float64(d.Wilcoxon.WMinus) > float64(d.Wilcoxon.WPlus):
				add(float64(d.Wilcoxon.P), where+" margins")
			}
		}
	}
	if m == AccuracyDrop || m == AccuracyP || m == P {
		for _, a := range r.Accuracy {
			where := string(a.Split)
			switch {
			case m == AccuracyDrop:
				add(-float64(a.Change), where)
			case a.McNemar.Lost > a.McNemar.Gained:
				add(float64(a.McNemar.P), where+" accuracy")
			}
		}
	}
	if m == RobustAccuracyDrop || m == RobustAccuracyP || m == P {
		for _, a := range r.Robust {
			where := fmt.Sprintf("%s %s eps=%g", a.Split, a.Norm, a.Eps)
			switch {
			case m == RobustAccuracyDrop:
				add(-float64(a.Change), where)
			case a.McNemar != nil && a.McNemar.Lost > a.McNemar.Gained:
				add(float64(a.McNemar.P), where+" robust accuracy")
			}
		}
	}
	return out
}

// Check evaluates the gates on r, stores their verdicts in r.Gates and
// returns them.
func (r *Result) Check(gates []Gate) []GateResult {
	r.Gates = []GateResult{}
	for _, g := range gates {
		r.Gates = append(r.Gates, r.check(g))
	}
	return r.Gates
}

func (r *Result) check(g Gate) GateResult {
	res := GateResult{Gate: g.String(), Status: Pass, Value: Float(math.NaN())}
	ms := r.measure(g.Metric)
	if len(ms) == 0 {
		if g.Metric.isP() {
			// No change for the worse to test: nothing can trip.
			res.Message = fmt.Sprintf("%s: no change for the worse to test", g.Metric)
			return res
		}
		res.Status = Error
		res.Message = fmt.Sprintf("%s: not measured: %s", g.Metric, r.missing(g.Metric))
		return res
	}
	best := ms[0]
	for _, m := range ms {
		if g.trips(m.value) {
			best = m
			res.Status = Fail
			break
		}
		if (g.Metric.isP() && m.value < best.value) || (!g.Metric.isP() && m.value > best.value) {
			best = m
		}
	}
	res.Value, res.Where = Float(best.value), best.where
	res.Message = fmt.Sprintf("%s = %s at %s", g.Metric, formatValue(g, best.value), best.where)
	return res
}

// missing says why metric m has no value in r.
func (r *Result) missing(m Metric) string {
	switch m {
	case RobustAccuracyDrop:
		return "the audits have no PGD robust accuracy (audit with --pgd-eps)"
	case MeanMarginDrop, DroppedShare:
		return "no image's attack succeeded on both models"
	}
	return "the audits have no images"
}

// formatValue writes v in the gate's unit: a percentage when the gate's
// threshold is one.
func formatValue(g Gate, v float64) string {
	if g.Percent {
		return strconv.FormatFloat(100*v, 'g', 4, 64) + "%"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
