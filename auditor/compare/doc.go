// Package compare compares two audits of different models made on the same
// images: paired statistics per split and norm, and gates that decide
// whether a candidate model regressed against a baseline (for CI).
package compare
