package compare_test

import (
	"fmt"

	"github.com/marginaudit/marginaudit/auditor/compare"
)

func ExampleParseGates() {
	gates, err := compare.ParseGates("mean_margin_drop>5%, robust_accuracy_drop>0.02, p<0.01")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, g := range gates {
		fmt.Printf("%s: %s %s %g (percent %t)\n", g, g.Metric, g.Op, g.Threshold, g.Percent)
	}
	_, err = compare.ParseGates("mean_margin_drop>5%,margins<1")
	fmt.Println(err)
	// Output:
	// mean_margin_drop>5%: mean_margin_drop > 5 (percent true)
	// robust_accuracy_drop>0.02: robust_accuracy_drop > 0.02 (percent false)
	// p<0.01: p < 0.01 (percent false)
	// gate "margins<1" (at byte 20): unknown metric "margins" (want one of mean_margin_drop, dropped_share, accuracy_drop, robust_accuracy_drop, margin_p, accuracy_p, robust_accuracy_p, p)
}

func ExampleWilcoxon() {
	// Darwin's data as Fisher analysed it: the height differences of 15
	// pairs of cross- and self-fertilised plants.
	d := []float64{6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75}
	w := compare.Wilcoxon(d)
	fmt.Printf("W+ = %g, W- = %g, p = %.5f (%s)\n", w.WPlus, w.WMinus, w.P, w.Method)
	// Output:
	// W+ = 96, W- = 24, p = 0.04126 (exact)
}

func ExampleMcNemar() {
	// Of 200 images, 12 are classified correctly by the baseline only and
	// 3 by the candidate only.
	m := compare.McNemar(12, 3)
	fmt.Printf("lost %d, gained %d, p = %.4f (%s)\n", m.Lost, m.Gained, m.P, m.Method)
	// Output:
	// lost 12, gained 3, p = 0.0352 (exact)
}
