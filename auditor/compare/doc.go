// Package compare compares two audits of different models made on the same
// images: paired statistics per split and norm, and gates that decide
// whether a candidate model regressed against a baseline (for CI). It is
// what `marginaudit diff` runs; the statistics (Wilcoxon, McNemar,
// TInterval, AverageRanks) serve reports of model sets too.
//
// # Pairing
//
// Compare refuses audits whose settings.json differ (auditor.DiffSettings
// names every field) or whose splits and norms hold other images (indices
// or labels). Images are paired by (split, index, norm). A failed attack
// (success false; its margin is NaN in margins.csv) found no perturbation:
// the image's margin is unknown and may be large, so it is neither zero
// nor imputed. The images that failed on one side or both are counted
// (baseline_failed, candidate_failed, both_failed) and left out of the
// margin statistics, which describe the images attacked successfully on
// both models (pairs). Comparing refined margins (Options.Refined, "refined":
// true), an image's margin is its margin_refined wherever the refinement
// confirmed a point, also where DeepFool failed; the failures are then the
// censored images (nothing flipped them within the input range; their
// margin_refined is the radius tried, not a margin), whether DeepFool
// flipped them or not.
//
// # Tests
//
//   - Margins: the mean paired difference (candidate − baseline) with its
//     Student t-interval at the chosen level (see TInterval), and
//     Wilcoxon's signed-rank test of the differences (see Wilcoxon: exact
//     for up to ExactWilcoxonMax differences without ties or zeros, else
//     normal with tie correction; zero differences dropped).
//   - Clean accuracy: McNemar's test on the images classified correctly by
//     one model only (see McNemar: exact binomial below ExactMcNemarMax
//     discordant images, else χ² with continuity correction).
//   - PGD robust accuracy at each norm and ε: the change of the fraction
//     of robust images, and McNemar's test when both audits recorded each
//     image's outcome (robust.csv; older audits have counts only).
//
// # Gates
//
// ParseGates reads a --fail-on list such as
// "mean_margin_drop>5%,robust_accuracy_drop>0.02,p<0.01": comma-separated
// terms METRIC OP NUMBER[%], OP one of > >= < <=, "5%" meaning 0.05. The
// metrics are the Metric constants. Each gate is checked on every split,
// norm and radius and trips if any of them trips it; p-value gates look
// only at changes for the worse. A gate whose metric cannot be measured
// (robust_accuracy_drop of audits without PGD) has status "error", which
// fails like a tripped gate.
//
// # JSON
//
// A Result marshals to the output of `marginaudit diff --json`
// (format "marginaudit-diff", version 1). Undefined numbers are null.
//
//	{
//	  "format": "marginaudit-diff", "version": 1,
//	  "baseline":  {"dir": "audit-old", "checkpoint": "model.onnx", "epoch": 0},
//	  "candidate": {"dir": "audit-new", "checkpoint": "model.onnx", "epoch": 0},
//	  "level": 0.95,             // of the intervals
//	  "refined": false,          // refined margins compared
//	  "margins": [{              // by split, then norm
//	    "split": "test", "norm": "l2",
//	    "images": 50, "pairs": 49,
//	    "baseline_failed": 0, "candidate_failed": 1, "both_failed": 0,
//	    "baseline_mean": 1.53, "candidate_mean": 1.07,   // means over the pairs
//	    "change": -0.46, "change_se": 0.02,              // mean of candidate − baseline
//	    "change_lo": -0.51, "change_hi": -0.42,          // its t-interval
//	    "relative_change": -0.30,                        // change / baseline_mean
//	    "dropped": 49, "dropped_share": 1.0,             // pairs whose margin dropped
//	    "wilcoxon": {"n": 49, "zeros": 0, "w_plus": 0, "w_minus": 1225,
//	                 "z": -6.09, "p": 1.1e-9, "method": "normal"}   // or "exact" (z null)
//	  }],
//	  "accuracy": [{             // by split
//	    "split": "test", "images": 50, "baseline": 0.9, "candidate": 0.88, "change": -0.02,
//	    "mcnemar": {"lost": 1, "gained": 0, "stat": null, "p": 1, "method": "exact"}  // or "chi-square"
//	  }],
//	  "robust_accuracy": [{      // by split, norm, eps; [] without PGD
//	    "split": "test", "norm": "linf", "eps": 0.1, "images": 50,
//	    "baseline": 0.6, "candidate": 0.4, "change": -0.2,
//	    "mcnemar": {"lost": 10, "gained": 0, "stat": null, "p": 0.00195, "method": "exact"}  // null without robust.csv
//	  }],
//	  "gates": [{                // in the order given; [] without --fail-on
//	    "gate": "mean_margin_drop>5%", "status": "fail",   // "pass", "fail" or "error"
//	    "value": 0.30, "where": "test l2",                  // the deciding measurement
//	    "message": "mean_margin_drop = 30% at test l2"
//	  }]
//	}
//
// # JUnit
//
// WriteJUnit writes the gates as JUnit XML, the format CI services show
// natively: <testsuites> with one <testsuite> holding one <testcase> per
// gate (name: the gate as written; classname: JUnitClassname), a
// <failure> carrying the measured value for a tripped gate and an <error>
// for one that could not be measured; tests, failures, errors and time
// attributes on both suite elements.
package compare
