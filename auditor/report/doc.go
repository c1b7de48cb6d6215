// Package report turns audit directories (as written by auditor.Store) into
// a report: figures as PNG and SVG, one static index.html, and a
// summary.json that states the study's observations as measured statistics.
// [Write] does it all; [Observations.Text] is the short statement the CLI
// prints.
//
// # Inputs
//
// Each [Audit] is a folder with settings.json and margins.csv (read with
// compare.ReadFolder, the reader `marginaudit diff` uses), and
// normally summary.json (its PGD robust accuracies are shown, and how each
// checkpoint was run: the pixel range and normalisation the attacks used,
// where its epoch came from) and
// confidence.csv (see below), which audits made before it was recorded
// lack. Margin statistics are recomputed from margins.csv with
// auditor.Summarize, so they describe exactly the records drawn. Audits carry a label ("standard", "adversarial", …); the audit
// labelled Options.Standard is the denominator of observation (2).
//
// # Observations
//
//  1. Trend after epoch 1, per audit, split and norm: Spearman's rank
//     correlation ρ of the mean margin of all images with the epoch, over
//     the epochs ≥ 1 (ties get average ranks), its two-sided p-value ([Spearman]:
//     exact permutation test up to [ExactSpearmanMax] epochs, t
//     approximation with n − 2 degrees of freedom above), and the relative
//     change of the mean margin from the first epoch ≥ 1 to the last. A
//     trend is called increasing or decreasing when p < Alpha. With few
//     epochs no trend can be significant: the exact p is at least 2/n!
//     (0.083 for 4 epochs), and the text says so.
//  2. Adversarial over standard training, per epoch, split and norm: the
//     ratio of mean margins of each other audit to the standard one, with a
//     delta-method standard error.
//  3. Misclassified over correctly classified images, per audit, epoch,
//     split and norm: the ratio of their mean margins and a Mann–Whitney U
//     test of the two samples ([MannWhitney]: two-sided, normal
//     approximation with tie and continuity correction, as scipy's
//     mannwhitneyu(method="asymptotic")). P-values are not corrected for the
//     number of epochs tested; the sample sizes stand beside each of them.
//  4. The margin as a detector of misclassification, per audit, epoch, split
//     and norm: the AUROC of −margin for the misclassified images ([AUROC],
//     rank formula, ties counting ½), and the same for the max-softmax
//     baseline −max_softmax on the same images when the audit has
//     confidence.csv; otherwise the baseline is null and a note says why.
//  5. Calibration beside the margins, when the audit has confidence.csv:
//     per audit, epoch and split, the expected calibration error (ECE =
//     Σ_b (n_b/N)·|accuracy_b − mean confidence_b|) and the maximum
//     calibration error (the largest gap of a non-empty bin) of the clean
//     max-softmax over [CalibrationBins] = 15 equal-width bins of [0, 1]
//     (bin b holds confidences in (b/15, (b+1)/15]), with the reliability
//     diagram (the bins' counts, accuracies and mean confidences), over
//     every audited image ([Calibrate]); and per norm, Spearman's ρ of the
//     margin with the confidence, with the over-confidence max_softmax −
//     correct, and with the confidence of the misclassified images alone
//     ([MarginConfidence] says why each).
//
// # Separate models
//
// An audit whose checkpoints had no epochs (summary.json's epoch_from is
// "position" for each) compares separate models side by side, not the
// epochs of a training run: the report names the models by file on axes,
// in captions and in sentences, and computes no trend (1), no ratio to
// standard training (2) and no transitions, with a note saying so.
// Options.Epochs then counts the models in the order given, from 0.
//
// # Model sets
//
// Two audits or more that hold one checkpoint each, none with an epoch
// (epoch_from "position": models made elsewhere, audited one per folder),
// are a model set; Options.Models makes any audits of one checkpoint each
// a model set (an audit of several checkpoints is then an error). Other
// inputs are reported audit by audit, as training runs or as above. A model is named by
// its audit's label (LABEL=DIR on the command line). The report then draws
// the models side by side, pairs each with a baseline (the first, or
// Options.Baseline) image by image with compare.Compare — as `marginaudit
// diff` does: mean paired change with its t-interval, Wilcoxon's test,
// the share of images whose margin dropped, the change of clean and PGD
// robust accuracy with McNemar's test — and states (3) and (4) per model.
// A pair audited with other settings or on other images
// (compare.MismatchError) is reported as not compared, with what differs,
// and the report goes on. No trend (1), no ratio to standard training (2),
// no transitions; Options.Epochs is ignored; every sentence, caption and
// heading speaks of models.
//
// Failed attacks (no margin) are left out of every statistic and counted in
// summary.json (audits[].failures) and in every caption of a mean, with how
// they are treated. With Options.Refined the statistics use the refined
// margins: an image DeepFool failed on but the refinement flipped has one;
// a censored image (nothing flipped it within the input range) has none
// and is what audits[].failures counts.
//
// # The bracket
//
// An audit made with refinement (margin_refined in margins.csv) also gets
// the bracket: per epoch, split and norm the mean DeepFool margin and the
// mean refined margin of the images that have both (summary.json
// "brackets", a table, the bracket figure), with the images DeepFool
// failed on and the censored ones counted; and R(ε) at the chosen epochs
// from both margins, drawn as a band (an image without a margin counts
// above every ε, as in robustness-SPLIT-NORM). An audit that also
// certified adds the mean certified lower bound (0 for misclassified
// images) to the bracket and the certified R(ε) to the band, which then
// spans from the certified curve to DeepFool's.
//
// # confidence.csv
//
// The per-image confidence of an audit, beside margins.csv, one row per
// (checkpoint, split, index), whatever the number of norms, written by
// auditor.Run from the clean scores of the same classifier:
//
//	checkpoint,epoch,split,index,max_softmax
//	epoch-001.onnx,1,test,0,0.9731
//
// max_softmax is the largest softmax probability of the clean image (for a
// model with probability outputs, its largest output). The format belongs
// to package auditor: [auditor.Confidence], [auditor.WriteConfidence] and
// [auditor.ReadConfidence].
//
// # Report directory
//
//	index.html           the page: audits, observations, figures with captions; needs no other file
//	                     (figures embedded as data: URIs), no scripts, no network
//	summary.json         the Observations, below
//	figures/NAME.png     every figure at 96 dpi (10 in wide: 960 px)
//	figures/NAME.svg     the same as SVG
//
// The figures, per audit (LABEL is the label reduced to [a-z0-9_-]):
//
//	margin-LABEL-NORM        mean margin ± SE per epoch, train and test; accuracy (and PGD robust accuracy) beside it
//	compare-NORM             all audits overlaid, one panel per split (two audits or more)
//	groups-LABEL-NORM        mean margin ± SE of correct vs misclassified images per epoch, one panel per split
//	hist-LABEL-SPLIT-NORM    density histograms of correct vs misclassified margins at Options.Epochs
//	sankey-LABEL-SPLIT       correct/misclassified transitions between consecutive epochs
//	bracket-LABEL-NORM       refined audits: mean DeepFool and refined margins per epoch, one panel per split
//	band-LABEL-SPLIT-NORM    refined audits: R(ε) of the DeepFool and refined margins at Options.Epochs, as a band
//	reliability-LABEL        reliability diagrams at Options.Epochs, one row per split (with confidence.csv)
//	calibration-LABEL        ECE and MCE per epoch, one panel per split (with confidence.csv)
//	gallery-LABEL-SPLIT-NORM the GalleryImages correctly classified images closest to and farthest
//	                         from the boundary at Options.Epochs: clean | adversarial | perturbation
//	                         (with saved perturbations, audit --save-adversarial; see GalleryImage):
//	                         DeepFool's points, or with Options.Refined the refined ones
//
// A model set has instead, besides hist-LABEL-SPLIT-NORM of each model:
//
//	models-NORM              mean margin ± SE per model, one panel per split
//	distribution-SPLIT-NORM  the models' margin histograms overlaid, each of unit area
//	robustness-SPLIT-NORM    R(ε), the fraction of images whose margin exceeds ε, per model;
//	                         an image whose attack failed counts as above every ε
//
// Every file is written atomically (package atomicfile: temporary file,
// fsync, rename, mode 0644 less the umask), and index.html last.
//
// # summary.json
//
// The schema (format "marginaudit-report", version 1) is stable: fields may
// be added, never renamed or given another meaning without a new version.
// Undefined statistics (a ratio to an empty group, the p-value of an empty
// sample) are null. Lists are sorted as the audits were given, then by
// epoch, split (train, test) and norm (l2, linf).
//
//	{
//	  "format": "marginaudit-report", "version": 1,
//	  "margin": "margin",                 // or "margin_refined" (Options.Refined)
//	  "alpha": 0.05,                      // significance level of the sentences
//	  "audits": [{"label": "standard", "dir": "runs/std", "data": "mnist",
//	      "epochs": [0, 1, …], "checkpoints": ["epoch-000.onnx", …],  // parallel to epochs
//	      "separate_models": false,       // true: models without epochs, see above
//	      "input": "pixel range [0, 1] from the checkpoints' metadata; no normalisation",
//	      "splits": ["train", "test"], "norms": ["l2", "linf"],
//	      "images": [{"split": "train", "images": 1000}, …],
//	      "failures": [{"norm": "l2", "failures": 3, "attacks": 22000,
//	          "treatment": "3 failed attacks after all restarts, left out of the means"}, …],
//	      "confidence": true,             // confidence.csv was present
//	      "settings": {…}}],              // the audit's settings.json
//	  "trend": [{"audit": "standard", "split": "test", "norm": "l2",
//	      "epochs": [1, …, 10], "first_epoch": 1, "last_epoch": 10,
//	      "mean_first": 0.82, "mean_last": 1.41, "relative_change": 0.72,
//	      "spearman_rho": 0.976, "p_value": 2.1e-05, "p_method": "exact",  // or "t"
//	      "direction": "increasing"}],    // "decreasing" or "none"
//	  "adversarial_ratio": [{"audit": "adversarial", "standard": "standard",
//	      "epoch": 10, "split": "test", "norm": "linf",
//	      "mean": 0.21, "se": 0.002, "standard_mean": 0.097, "standard_se": 0.001,
//	      "ratio": 2.16, "ratio_se": 0.04}],
//	  "incorrect_ratio": [{"audit": "standard", "epoch": 10, "split": "test", "norm": "l2",
//	      "n_correct": 959, "n_incorrect": 37, "mean_correct": 1.42, "mean_incorrect": 0.54,
//	      "ratio": 0.38, "mann_whitney_u": 2120, "z": -8.9, "p_value": 4e-19,
//	      "p_method": "normal"}],         // U of the misclassified sample
//	  "detection": [{"audit": "standard", "epoch": 10, "split": "test", "norm": "l2",
//	      "n_correct": 959, "n_incorrect": 37,
//	      "auroc_margin": 0.957, "auroc_max_softmax": 0.864}],  // null without confidence.csv
//	  "brackets": [{"audit": "standard", "epoch": 10, "split": "test", "norm": "l2",  // refined audits only
//	      "images": 500, "deepfool_failures": 2, "censored": 0, "paired": 498,
//	      "mean_deepfool": 1.41, "mean_refined": 1.37, "ratio": 0.97,
//	      "mean_lower": 0.61, "lower_ratio": 0.45}],  // certified; null without certify
//	  "calibration": [{"audit": "standard", "epoch": 10, "split": "test", "n": 1000,  // with confidence.csv
//	      "accuracy": 0.963, "mean_confidence": 0.981, "ece": 0.021, "mce": 0.31,     // 15 equal-width bins
//	      "bins": [{"lo": 0, "hi": 0.0667, "n": 0, "accuracy": null, "confidence": null}, …]}],
//	  "margin_confidence": [{"audit": "standard", "epoch": 10, "split": "test", "norm": "l2",
//	      "n": 998, "spearman_rho_confidence": 0.61, "p_confidence": 1e-90,
//	      "spearman_rho_overconfidence": 0.55, "p_overconfidence": 1e-70, "p_method": "t",
//	      "n_misclassified": 37, "spearman_rho_misclassified": 0.12, "p_misclassified": 0.47}],
//	  "gallery": [{"audit": "standard", "epoch": 10, "split": "test", "norm": "l2",
//	      "end": "closest", "index": 4512, "label": 9, "adversarial_pred": 4,  // or "farthest"
//	      "margin": 0.21, "scale": 0.09,  // margin: ‖δ‖; scale: max |δ|, the perturbation's grey scale
//	      "refined": false}],             // x + δ is FMN's refined point, margin margin_refined (Options.Refined)
//	  "figures": [{"kind": "margin", "png": "figures/margin-standard-l2.png",
//	      "svg": "figures/margin-standard-l2.svg", "title": "…", "caption": "…",
//	      "audit": "standard", "norm": "l2"}],   // "split" too where a figure has one
//	  "model_set": {                      // null unless the audits are a model set
//	    "baseline": "a", "level": 0.95,
//	    "margins": [{"model": "a", "checkpoint": "a.onnx", "split": "test", "norm": "l2",
//	        "images": 100, "failures": 0, "accuracy": 0.97,
//	        "margin": {"n": 100, "mean": 1.4, "se": 0.05, "min": …, "q1": …, "median": …, "q3": …, "max": …}}],
//	    "pairs": [{"model": "b", "baseline": "a", "comparable": true,
//	        "reason": "…",                  // why not, when comparable is false (lists then empty)
//	        "margins": […], "accuracy": […], "robust_accuracy": […]}]},  // as in marginaudit diff --json
//	  "notes": ["audit adversarial has no confidence.csv: …"]
//	}
package report
