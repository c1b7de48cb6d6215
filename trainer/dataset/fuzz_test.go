package dataset

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fuzzMaxBytes bounds the data a fuzz input may declare or hold: larger ones
// are skipped as absurd, to keep each execution fast.
const fuzzMaxBytes = 1 << 22

// addSeeds adds the files under testdata/ and testdata/*/ matching pattern
// and the given generated inputs to f's corpus.
func addSeeds(f *testing.F, pattern string, generated ...[]byte) {
	top, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil {
		f.Fatal(err)
	}
	sub, err := filepath.Glob(filepath.Join("testdata", "*", pattern))
	if err != nil {
		f.Fatal(err)
	}
	paths := append(top, sub...)
	if len(paths) == 0 {
		f.Fatalf("no seed files match testdata/%s", pattern)
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			continue // testdata/fuzz/FuzzX holds the fuzzer's own corpus
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range generated {
		f.Add(b)
	}
}

// sameError fails unless a and b are both nil or both *FormatErrors with the
// same cause and offset, and never a recovered panic.
func sameError(t *testing.T, a, b error) {
	t.Helper()
	for _, err := range []error{a, b} {
		if errors.Is(err, errInternal) {
			t.Fatal(err)
		}
		var fe *FormatError
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("error %v (%T) is not a *FormatError", err, err)
		}
	}
	if (a == nil) != (b == nil) {
		t.Fatalf("sized reader: %v; opaque reader: %v", a, b)
	}
	if a == nil {
		return
	}
	var fa, fb *FormatError
	errors.As(a, &fa)
	errors.As(b, &fb)
	if fa.Offset != fb.Offset || fa.Err.Error() != fb.Err.Error() {
		t.Fatalf("sized reader: %v; opaque reader: %v", a, b)
	}
}

func FuzzReadIDXImages(f *testing.F) {
	valid := idxImages(2, 3, 3, 21)
	addSeeds(f, "*images*",
		valid, gz(valid), idxHeader(IDXImagesMagic, 0, 28, 28),
		valid[:20], append(bytes.Clone(valid), 9), idxLabels(2, 1),
		idxHeader(IDXImagesMagic, 60000, 28, 28))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxBytes {
			t.Skip("input too large")
		}
		if cfg, err := DecodeIDXConfig(bytes.NewReader(data)); err == nil && cfg.DataSize() > fuzzMaxBytes {
			t.Skip("absurd declared size")
		}
		pix, cfg, err := ReadIDXImages(bytes.NewReader(data))
		pix2, cfg2, err2 := ReadIDXImages(opaque{bytes.NewReader(data)})
		sameError(t, err, err2)
		if err != nil {
			return
		}
		if cfg != cfg2 || !slices.Equal(pix, pix2) {
			t.Fatalf("sized and opaque readers disagree: %+v vs %+v", cfg, cfg2)
		}
		if hdr, err := DecodeIDXConfig(bytes.NewReader(data)); err != nil || hdr != cfg {
			t.Fatalf("DecodeIDXConfig = %+v, %v; ReadIDXImages read %+v", hdr, err, cfg)
		}
		if int64(len(pix)) != cfg.DataSize() {
			t.Fatalf("%d pixels for %+v", len(pix), cfg)
		}
		for i, v := range pix {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("pixel %d = %v outside [0, 1]", i, v)
			}
		}
		var buf bytes.Buffer
		if err := WriteIDXImages(&buf, pix, cfg.N, cfg.Rows, cfg.Cols); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), gunzipIfGz(t, data)) {
			t.Fatal("WriteIDXImages(ReadIDXImages(data)) differs from the data")
		}
	})
}

func FuzzReadIDXLabels(f *testing.F) {
	valid := idxLabels(10, 22)
	addSeeds(f, "*labels*",
		valid, gz(valid), idxHeader(IDXLabelsMagic, 0),
		valid[:9], append(bytes.Clone(valid), 1), append(idxHeader(IDXLabelsMagic, 1), 10),
		idxImages(1, 1, 1, 1), idxHeader(IDXLabelsMagic, 60000))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxBytes {
			t.Skip("input too large")
		}
		if cfg, err := DecodeIDXConfig(bytes.NewReader(data)); err == nil && cfg.DataSize() > fuzzMaxBytes {
			t.Skip("absurd declared size")
		}
		labels, err := ReadIDXLabels(bytes.NewReader(data))
		labels2, err2 := ReadIDXLabels(opaque{bytes.NewReader(data)})
		sameError(t, err, err2)
		if err != nil {
			return
		}
		if !slices.Equal(labels, labels2) {
			t.Fatal("sized and opaque readers disagree")
		}
		var buf bytes.Buffer
		if err := WriteIDXLabels(&buf, labels); err != nil {
			t.Fatal(err) // also catches labels outside 0–9
		}
		if !bytes.Equal(buf.Bytes(), gunzipIfGz(t, data)) {
			t.Fatal("WriteIDXLabels(ReadIDXLabels(data)) differs from the data")
		}
	})
}

func FuzzReadCIFAR(f *testing.F) {
	valid := cifarRecords(2, 23)
	bad := bytes.Clone(valid)
	bad[CIFARRecordSize] = 10
	addSeeds(f, "*cifar*",
		valid, gz(valid), valid[:CIFARRecordSize], valid[:CIFARRecordSize+1], bad, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxBytes {
			t.Skip("input too large")
		}
		d, err := ReadCIFAR(bytes.NewReader(data))
		d2, err2 := ReadCIFAR(opaque{bytes.NewReader(data)})
		// A file both too short and with a bad label is reported by size
		// when the size is known up front and by label when streaming: compare
		// only success.
		for _, e := range []error{err, err2} {
			var fe *FormatError
			if e != nil && (errors.Is(e, errInternal) || !errors.As(e, &fe)) {
				t.Fatalf("error %v (%T) is not a *FormatError", e, e)
			}
		}
		if (err == nil) != (err2 == nil) {
			t.Fatalf("sized reader: %v; opaque reader: %v", err, err2)
		}
		if err != nil {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
		if d.N != d2.N || !slices.Equal(d.Labels, d2.Labels) || !slices.Equal(d.Images, d2.Images) {
			t.Fatal("sized and opaque readers disagree")
		}
		plain := gunzipIfGz(t, data)
		if d.N*CIFARRecordSize != len(plain) {
			t.Fatalf("%d records from %d bytes", d.N, len(plain))
		}
		var buf bytes.Buffer
		if err := WriteCIFAR(&buf, d); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), plain) {
			t.Fatal("WriteCIFAR(ReadCIFAR(data)) differs from the data")
		}
	})
}
