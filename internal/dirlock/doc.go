// Package dirlock gives one process at a time a folder to write: an
// exclusive advisory lock on the file FileName inside the folder.
//
// The lock is a flock(2) on an open file description, so the kernel
// releases it when the process ends in any way, kill -9 included: a lock
// file left behind by a dead process is not a lock, and the next [TryLock]
// takes it at once. Two descriptors of the same file opened separately
// exclude each other even within one process; a process that locks a
// folder it already holds is refused like any other.
//
// The holder writes its process ID and command line into the lock file, so
// that [TryLock] can refuse with a [*HeldError] that names them. [Wait]
// polls until the holder is gone, or until its context is done.
//
// [Lock.Close] removes the lock file while still holding the lock, and the
// folders that its TryLock created if they are still empty, so that a run
// leaves nothing of the lock behind. (When several processes create the
// folder at once, the one that created it may not be the one that gets
// the lock, and an empty folder can stay.) A process that opened the file
// before it was removed notices, once it holds the lock, that the name no
// longer leads to its file, and starts over: two processes never hold
// locks on two different files under one name.
//
// The lock is advisory: it excludes only processes that take it. On
// systems without flock (Windows, Solaris), locking creates the file and
// excludes nothing.
package dirlock
