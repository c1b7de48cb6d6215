// Package shard divides an audit's work among N processes that run apart,
// such as the tasks of a Slurm job array or the pods of a Kubernetes
// Indexed Job, and checks that the parts they wrote cover the whole.
//
// An audit's work is a list of [Item]s, one per (checkpoint, split), each
// with its number of images and the cost of one image (the attack runs it
// takes: one per norm). [Partition] divides the items among n shards,
// deterministically, so that every process computes the same division from
// the same checkpoints and images:
//
//   - with no more shards than items, each item is a [Unit] of its own,
//     given whole to the least loaded shard, largest first (a checkpoint is
//     then loaded by one shard only); the shards' costs differ by at most
//     one item's cost;
//   - with more shards than items, the images of all items, in order, are
//     cut into n runs of equal cost, so an item may be split into image
//     ranges; each shard's cost is within one image's cost of the mean
//     (with images of one cost, the shards' image counts differ by at
//     most one).
//
// A [Spec] names one shard, I/N with 0 ≤ I < N, as given on the command
// line ([Parse]) or by the scheduler ([FromEnv]). A [Manifest] records, in
// each shard's folder, the whole work, the shard and its units; [Cover]
// checks that a set of manifests covers every unit exactly once.
package shard
