// Package atomicfile writes files so that neither a reader nor a crash ever
// sees half of one: every file the program writes goes through WriteFile
// or Write.
//
// A file is written under a hidden temporary name in its own folder
// (".NAME.tmp-DIGITS", created with the caller's mode less the umask),
// flushed to disk with fsync, renamed over NAME, and the folder is synced
// so that the rename itself survives a power cut. Two files written one
// after the other are therefore durable in that order, which is what a
// store that marks work finished by the presence of a file relies on. On
// any error the temporary file is removed and NAME keeps its old contents
// (or stays absent). A crash may leave a temporary file behind:
// RemoveTemp clears a folder of them.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// WriteFile writes data to the file name, atomically. perm is the mode of
// a new file before the umask, as for os.WriteFile; unlike os.WriteFile, a
// file that existed is replaced with that mode too.
func WriteFile(name string, data []byte, perm fs.FileMode) error {
	return write(name, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// Write writes the file name, atomically, with what fn writes to a
// buffered writer. perm is as for WriteFile. An error from fn is
// returned wrapped, and name is left untouched.
func Write(name string, perm fs.FileMode, fn func(io.Writer) error) error {
	return write(name, perm, func(f *os.File) error {
		bw := bufio.NewWriterSize(f, 1<<16)
		if err := fn(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// write creates the temporary file, fills it with fill and moves it over
// name.
func write(name string, perm fs.FileMode, fill func(*os.File) error) error {
	dir := filepath.Dir(name)
	f, err := create(dir, filepath.Base(name), perm)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	tmp := f.Name()
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, bare(err, tmp))
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("writing %s: syncing its folder: %w", name, err)
	}
	return nil
}

// tempInfix separates a temporary file's target name from its random
// suffix.
const tempInfix = ".tmp-"

// create makes a new temporary file for base in dir with mode perm (less
// the umask, which the kernel applies; os.CreateTemp would always use 0600).
func create(dir, base string, perm fs.FileMode) (*os.File, error) {
	for range 10000 {
		p := filepath.Join(dir, "."+base+tempInfix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) {
			return f, bare(err, p)
		}
	}
	return nil, fmt.Errorf("no free temporary name for %s in %s", base, dir)
}

// IsTemp reports whether the base name is that of a temporary file made by
// this package.
func IsTemp(base string) bool {
	return strings.HasPrefix(base, ".") && strings.Contains(base, tempInfix)
}

// RemoveTemp removes the temporary files that interrupted writes left in
// dir (not in its subfolders). Only call it when no other writer is at
// work in dir.
func RemoveTemp(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() && IsTemp(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("removing a temporary file: %w", err)
			}
		}
	}
	return nil
}

// syncDir makes the renames in dir durable. File systems that cannot sync a
// folder (EINVAL) are let be.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// bare strips the temporary file's name from err: the caller names the
// file it asked for.
func bare(err error, tmp string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == tmp {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) && le.Old == tmp {
		return le.Err
	}
	return err
}

// Remove removes the file name and syncs its folder, so that the removal
// is durable before anything written after it.
func Remove(name string) error {
	if err := os.Remove(name); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(name)); err != nil {
		return fmt.Errorf("removing %s: syncing its folder: %w", name, err)
	}
	return nil
}
