package shard

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Identification of a shard manifest (shard.json).
const (
	FileName        = "shard.json"
	ManifestFormat  = "marginaudit-shard"
	ManifestVersion = 1
)

// Manifest says which part of an audit a shard's folder holds: the whole
// audit's work, the shard, and the shard's units (those Partition gives
// it). It is written as FileName in the shard's folder.
type Manifest struct {
	Format  string `json:"format"`  // ManifestFormat
	Version int    `json:"version"` // ManifestVersion
	Shard   Spec   `json:"shard"`
	Items   []Item `json:"items"` // the whole audit's work, in order
	Units   []Unit `json:"units"` // this shard's, in the order of Items
}

// NewManifest partitions items among sp.Count shards and returns the
// manifest of shard sp.
func NewManifest(items []Item, sp Spec) (*Manifest, error) {
	if _, err := check(sp, sp.String()); err != nil {
		return nil, err
	}
	shards, err := Partition(items, sp.Count)
	if err != nil {
		return nil, err
	}
	return &Manifest{Format: ManifestFormat, Version: ManifestVersion, Shard: sp, Items: items, Units: shards[sp.Index]}, nil
}

// Images returns the number of images of the manifest's units.
func (m *Manifest) Images() int {
	n := 0
	for _, u := range m.Units {
		n += u.Len()
	}
	return n
}

// Checkpoints returns the checkpoints of the manifest's units, in order.
func (m *Manifest) Checkpoints() []string {
	var out []string
	for _, u := range m.Units {
		if !slices.Contains(out, u.Checkpoint) {
			out = append(out, u.Checkpoint)
		}
	}
	return out
}

// Write writes m as indented JSON followed by a newline.
func (m *Manifest) Write(w io.Writer) error {
	b, err := m.marshal()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (m *Manifest) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("shard: encoding the manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// SameWork reports whether m and o are the same shard of the same work.
func (m *Manifest) SameWork(o *Manifest) bool {
	a, errA := m.marshal()
	b, errB := o.marshal()
	return errA == nil && errB == nil && string(a) == string(b)
}

// ReadManifest reads a manifest written by Write; name (usually the file
// name) appears in errors. It checks that the units are those that
// Partition gives the shard, so a manifest from another division of the
// work, or edited by hand, is refused.
func ReadManifest(r io.Reader, name string) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("shard: %s: %w", name, err)
	}
	if m.Format != ManifestFormat || m.Version != ManifestVersion {
		return nil, fmt.Errorf("shard: %s: format %q version %d, want %q version %d", name, m.Format, m.Version, ManifestFormat, ManifestVersion)
	}
	want, err := NewManifest(m.Items, m.Shard)
	if err != nil {
		return nil, fmt.Errorf("shard: %s: %w", name, err)
	}
	if !want.SameWork(&m) {
		return nil, fmt.Errorf("shard: %s: the units of shard %s are not those of its work's partition", name, m.Shard)
	}
	return &m, nil
}

// CoverError reports shards that are missing from, or given twice to, a
// set that should hold each shard of the work once.
type CoverError struct {
	Count   int
	Missing []Missing
	Doubled []Doubled
}

// Missing is a shard that no folder holds, with the units it would have.
type Missing struct {
	Index int
	Units []Unit
}

// Doubled is a shard that several folders hold.
type Doubled struct {
	Index int
	Dirs  []string
}

// Error names every missing shard with its units and every doubled one
// with its folders.
func (e *CoverError) Error() string {
	var parts []string
	for _, m := range e.Missing {
		units := make([]string, len(m.Units))
		for i, u := range m.Units {
			units[i] = u.String()
		}
		parts = append(parts, fmt.Sprintf("shard %d/%d is missing (%s)", m.Index, e.Count, strings.Join(units, ", ")))
	}
	for _, d := range e.Doubled {
		parts = append(parts, fmt.Sprintf("shard %d/%d is given %d times (%s)", d.Index, e.Count, len(d.Dirs), strings.Join(d.Dirs, ", ")))
	}
	return strings.Join(parts, "; ") // each part begins with "shard"
}

// Cover checks that the manifests, read from the folders dirs, are of one
// work and hold each of its shards exactly once, so that their units hold
// every image of every item exactly once. Shards of different work are an
// error naming both folders; missing or doubled shards a *CoverError.
func Cover(dirs []string, ms []*Manifest) error {
	if len(ms) == 0 {
		return fmt.Errorf("%w: no shards", ErrSpec)
	}
	first := ms[0]
	holders := make([][]string, first.Shard.Count)
	for i, m := range ms {
		switch {
		case m.Shard.Count != first.Shard.Count:
			return fmt.Errorf("shard: %s is shard %s but %s is shard %s: not one division of the work", dirs[0], first.Shard, dirs[i], m.Shard)
		case !slices.Equal(m.Items, first.Items):
			return fmt.Errorf("shard: %s and %s are shards of different work (checkpoints or images differ)", dirs[0], dirs[i])
		}
		holders[m.Shard.Index] = append(holders[m.Shard.Index], dirs[i])
	}
	shards, err := Partition(first.Items, first.Shard.Count)
	if err != nil {
		return err
	}
	e := &CoverError{Count: first.Shard.Count}
	for k, h := range holders {
		switch {
		case len(h) == 0:
			e.Missing = append(e.Missing, Missing{Index: k, Units: shards[k]})
		case len(h) > 1:
			e.Doubled = append(e.Doubled, Doubled{Index: k, Dirs: h})
		}
	}
	if len(e.Missing) > 0 || len(e.Doubled) > 0 {
		return e
	}
	return nil
}
