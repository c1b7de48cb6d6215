// Package auditor keeps the books of a margin audit: the records of the
// attacks on every checkpoint, their statistics, the checkpoints to audit
// and the audit directory that makes an audit resumable. Running the
// attacks is the job of package attack (auditor/attack).
//
// # Records
//
// A [Record] is one margin measurement: one image of one split (train or
// test), attacked in one norm (l2 or linf) on one checkpoint. Records are
// stored as margins.csv ([WriteRecords], [ReadRecords]) with the header
//
//	checkpoint,epoch,split,index,label,pred,correct,norm,margin,margin_refined,iterations,retries,success,censored,margin_lower
//
// Integers are decimal, booleans true or false, floats in the shortest
// form that reads back to the same float64; margin may be NaN when
// DeepFool failed (success false). margin_refined and censored are empty
// when the audit did not refine; with refinement (FMN, see
// attack.FMN.Refine) every image has one: the smallest perturbation a
// forward run confirmed, found from DeepFool's point or, where DeepFool
// failed, from a PGD search; censored is true when nothing flipped the
// image within the input range, and margin_refined then holds the largest
// radius tried (the margin lies beyond it). margin_lower is empty unless
// the audit certified (Settings.Certify): then it is the largest radius
// that linear bound propagation (package bound) proves the prediction
// for, bisected up to margin_refined (or margin), so that margin_lower ≤
// margin_refined ≤ margin; it is 0 for a misclassified image, whose
// prediction is wrong already. A checkpoint with an op bound propagation
// does not support fails (a *bound.UnsupportedError names the op), and
// the audit goes on with the others. Files written before the censored
// and margin_lower columns existed read as not censored and not
// certified; their refined margins came from a bisection along DeepFool's
// direction.
// The reader checks every field and reports a [*ParseError] with the file,
// line and column.
//
// confidence.csv ([WriteConfidence], [ReadConfidence]) holds the clean
// max-softmax probability of every audited image, one row per
// (checkpoint, split, image), the baseline of the report's detection
// AUROC:
//
//	checkpoint,epoch,split,index,max_softmax
//
// robust.csv ([WriteRobust], [ReadRobust]) holds whether every audited
// image is still classified correctly under each PGD attack, one row per
// (checkpoint, split, norm, eps, image), adding up to the PGD results:
//
//	checkpoint,epoch,split,norm,eps,index,robust
//
// With [Config].SaveAdversarial, adversarial/NAME/SPLIT-NORM.npy and
// SPLIT-NORM-index.npy hold the perturbations DeepFool found and each
// image's index and adversarial class, and with refinement
// SPLIT-NORM-refined.npy and SPLIT-NORM-refined-index.npy those of the
// refined points ([Adversarial], [ReadAdversarial]; the layout is
// documented at [AdversarialDir]).
//
// # Statistics
//
// [Summarize] groups the records by (epoch, split, norm, group), where the
// group is all images, the correctly classified ones or the misclassified
// ones, and describes each group's margins ([Dist]): count, mean, standard
// error of the mean (sample standard deviation over √n), minimum, quartiles,
// median and maximum. Quantiles are empirical, as gonum's stat.Quantile with
// stat.Empirical: observed values, never interpolated (see [Dist]).
//
// Images whose attack failed even after all retries have no valid margin.
// They are counted in each group's failures and left out of its margin
// statistics, rather than entered as a margin of 0 or of the last
// perturbation tried, which would bias the mean either way; a reader
// weighs the statistics against the failure count.
//
// Accuracy is per (epoch, split) over the audited images, each counted once
// whatever the number of norms. [Transitions] counts, per split and pair of
// adjacent audited epochs, the images that stay correct, become incorrect,
// become correct or stay incorrect.
//
// # summary.json
//
// [WriteSummary] writes a [Summary] as JSON. Its schema (version 1) is
// stable: fields may be added, never renamed or given another meaning
// without a new version. Statistics that are undefined (the mean of no
// margins, the standard error of one) are null. A checkpoint's "scores"
// and "batch" (added in version 1) say how its model was run: "scores" is
// "logits", "log-probabilities (Softmax replaced by LogSoftmax)", "log of
// the probability outputs" or "log-probabilities (LogSoftmax output)" (the
// margins are those of the logits in every case), and "batch", present for
// a model exported with a fixed batch size B, is "batch fixed at B:
// rewritten to symbolic" or "batch fixed at B: fed B images per run";
// "epoch_from" says where the epoch came from ("metadata", "name", or
// "position" for checkpoints without epochs: separate models numbered in
// the order given), "input_range" and "normalization" the input convention
// the attacks used, from the settings or the checkpoint's metadata (settings
// "range" [0, 0] means "from each checkpoint's metadata"). Each is absent
// for checkpoints audited before it was recorded.
//
//	{
//	  "format": "marginaudit-summary",
//	  "version": 1,
//	  "settings": {…},                         // as in settings.json, see Settings
//	  "checkpoints": [                         // by epoch
//	    {"checkpoint": "epoch-001.onnx", "epoch": 1,
//	     "accuracy": [{"split": "train", "images": 1000, "correct": 912, "accuracy": 0.912}, …],
//	     "scores": "logits",                   // the class scores attacked, see ModelInfo
//	     "batch": "batch fixed at 1: rewritten to symbolic",  // absent for a symbolic batch
//	     "epoch_from": "metadata",             // "name", or "position" for separate models
//	     "input_range": [0, 1], "normalization": "none"}  // or "mean=a,b,c;std=d,e,f"
//	  ],
//	  "groups": [                              // by epoch, split, norm, group
//	    {"checkpoint": "epoch-001.onnx", "epoch": 1, "split": "test", "norm": "l2",
//	     "group": "all",                       // "all", "correct" or "incorrect"
//	     "images": 1000, "failures": 2,        // images = margin.n + failures
//	     "margin": {"n": 998, "mean": 1.03, "se": 0.012, "min": 0.01,
//	                "q1": 0.71, "median": 1.01, "q3": 1.33, "max": 2.9},
//	     "margin_refined": {…} or null,        // uncensored refined margins; null when the audit did not refine
//	     "censored": 0,                        // refined: images = margin_refined.n + censored
//	     "margin_lower": {…}}                  // certified lower bounds (0 if misclassified); absent without certify
//	  ],
//	  "transitions": [                         // by split, then epoch
//	    {"split": "test", "from_epoch": 0, "to_epoch": 1,
//	     "from_checkpoint": "epoch-000.onnx", "to_checkpoint": "epoch-001.onnx",
//	     "correct_correct": 95, "correct_incorrect": 3, "incorrect_correct": 812,
//	     "incorrect_incorrect": 90, "only_from": 0, "only_to": 0}
//	  ],
//	  "pgd": [                                 // by epoch, split, norm, eps
//	    {"checkpoint": "epoch-001.onnx", "epoch": 1, "split": "test", "norm": "linf",
//	     "eps": 0.1, "images": 1000, "robust": 412, "robust_accuracy": 0.412}
//	  ]
//	}
//
// transitions.csv ([WriteTransitions]) holds the same counts under the
// header split,from_epoch,to_epoch,correct_correct,correct_incorrect,
// incorrect_correct,incorrect_incorrect.
//
// # Checkpoints
//
// [Discover] finds the checkpoints in folders and files and orders them by
// epoch: from the model's metadata, from the file name ([EpochFromName]),
// or from their position.
//
// # Images
//
// Each checkpoint's model must take the audited [Images] as they are: an
// image's Shape must be the model's input shape after the batch dimension,
// else the checkpoint fails with an [*ImageShapeError] naming both shapes.
// Images from a data set carry their layout (NCHW): for a model that takes
// another layout (attack.Layout: NHWC models read their input [N, H, W, C]
// through a Transpose to NCHW) they are transposed, and for a model that
// takes them flat, or without their single channel, they are reshaped.
// Sizes a model leaves symbolic are taken from the images.
//
// # Audit directory
//
// A [Store] is the output directory of an audit:
//
//	settings.json               the audit's Settings, written first
//	parts/NAME.csv              records of the finished checkpoint NAME
//	parts/pgd/NAME.csv          its PGD results
//	parts/confidence/NAME.csv   its images' max-softmax
//	parts/model/NAME.csv        how its model was run (see ModelHeader)
//	parts/robust/NAME.csv       its images' PGD outcomes
//	adversarial/NAME/           its perturbations, with SaveAdversarial
//	margins.csv                 all parts' records, by epoch
//	confidence.csv              all parts' max-softmax, by epoch
//	robust.csv                  all parts' PGD outcomes, by epoch
//	summary.json                see above ([Store.WriteReport])
//	transitions.csv             see above ([Store.WriteReport])
//
// Each file is replaced atomically (temporary file, sync, rename), and a
// checkpoint counts as finished exactly when its margins part exists, so an
// interrupted audit resumes where it stopped, losing nothing and
// duplicating nothing. Reopening a directory with other settings fails with
// a [*SettingsError] that lists each differing field with both values.
//
// # Shards
//
// With [Config.Shard], Run audits one shard of the work, as package shard
// divides it into checkpoint × split × image-range units, into a folder
// that is an audit directory of those units plus shard.json (the work, the
// shard and its units); it resumes only as that shard. [ReadShardFolder]
// reads such a folder without changing it (for a status while the audit
// runs), and [Merge] checks that shard folders share their settings, are
// every shard once and have finished, then writes the audit directory one
// Run of all the work writes, byte for byte: each checkpoint's part is put
// together from its units' rows and committed through a Store.
package auditor
