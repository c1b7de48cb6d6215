// Package heartbeat keeps a small file in an audit folder, FileName, that
// says which process audits the folder, what it is doing and when it last
// said so, so that `marginaudit status` can tell a shard that runs from one
// that stopped, from another machine (a cluster's login node), where
// process IDs and locks of the compute nodes mean nothing.
//
// A [Writer] holds the state in memory; the progress callbacks only update
// it. The file is written when the writer starts, then at most once every
// [Options.Every] by a ticker, whatever the rate of the callbacks (so a
// long step that reports no progress still shows the process alive), and
// once more by [Writer.Finish], which marks the run finished or failed
// with its error. Each write is atomic (internal/atomicfile), so a reader
// never sees half of one. A process that is killed leaves its last
// "running" beat behind, which grows old: [Beat.Describe] calls it
// stopped once it is older than a threshold.
//
// A write that fails never fails the audit: the writer goes on trying at
// each tick and reports the first failure once, through [Options.OnError].
//
// The file is the audit's own business, not part of its results: merging
// shards ignores it, and so do comparisons of audit folders.
package heartbeat
