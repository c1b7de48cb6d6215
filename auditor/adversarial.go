package auditor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/atomicfile"
	"github.com/marginaudit/marginaudit/internal/npy"
)

// AdversarialDir is the folder of the saved adversarial perturbations in
// an audit directory (Config.SaveAdversarial): for each
// finished checkpoint NAME, split and norm, two NumPy arrays in
//
//	adversarial/NAME/SPLIT-NORM.npy        float32 [N, ...image shape]: x_adv − x per image
//	adversarial/NAME/SPLIT-NORM-index.npy  int64 [N, 2]: the image's index, the prediction at x_adv
//
// for DeepFool's points, whose norms are the margin column, and with
// refinement (Settings.Refine) two more for the refined points, whose
// norms are margin_refined:
//
//	adversarial/NAME/SPLIT-NORM-refined.npy
//	adversarial/NAME/SPLIT-NORM-refined-index.npy
//
// Row i of each is the i-th image of the split in margins.csv's order (the
// order of the records of that checkpoint, split and norm). The image shape
// and layout are those of the audited images as given (NCHW [C, H, W] for
// the data sets, the --images array's shape after N), pixel space, so
// x + δ is the adversarial image the attack found (clipped to the pixel
// range). Where DeepFool failed after all retries its perturbation is
// zeros and the prediction −1; so is the refined one of a censored image.
// The refined point is FMN's, confirmed adversarial by a forward run: it
// starts at DeepFool's point (or a search's) and may move in any
// direction, so it is no rescaling of DeepFool's perturbation. Audits
// saved before the refined files existed have DeepFool's only.
//
// The files are written with the checkpoint's other parts, before its
// margins part (see Store), so a finished checkpoint has all of them or,
// when audited without SaveAdversarial, none.
const AdversarialDir = "adversarial"

// Adversarial holds the perturbations that DeepFool, or the refinement,
// found for the images of one split of a checkpoint in one norm.
type Adversarial struct {
	Split Split
	Norm  Norm
	// Refined is true for the refined points (margin_refined), false for
	// DeepFool's (margin).
	Refined bool
	Shape   []int64 // the shape of one image
	// Index holds the images' indices in their data set, in the order of
	// the records in margins.csv.
	Index []int
	// AdvPred is the prediction at x_adv, −1 where the attack failed.
	AdvPred []int
	// Delta holds len(Index) perturbations x_adv − x of Shape each,
	// concatenated; zeros where the attack failed.
	Delta []float32
}

// AdversarialFiles returns the paths of the perturbations and of their
// index in the audit directory dir for a checkpoint, split and norm: of
// the refined points when refined, else of DeepFool's.
func AdversarialFiles(dir, checkpoint string, split Split, norm Norm, refined bool) (delta, index string) {
	base := filepath.Join(dir, AdversarialDir, checkpoint, string(split)+"-"+string(norm))
	if refined {
		base += "-refined"
	}
	return base + ".npy", base + "-index.npy"
}

// String names a's split and norm, and whether its points are refined.
func (a *Adversarial) String() string {
	if a.Refined {
		return fmt.Sprintf("%s %s refined", a.Split, a.Norm)
	}
	return fmt.Sprintf("%s %s", a.Split, a.Norm)
}

// check reports whether a is consistent.
func (a *Adversarial) check() error {
	n := len(a.Index)
	switch {
	case len(a.AdvPred) != n:
		return fmt.Errorf("%s: %d images but %d adversarial predictions", a, n, len(a.AdvPred))
	case len(a.Shape) == 0 || slices.ContainsFunc(a.Shape, func(d int64) bool { return d <= 0 }):
		return fmt.Errorf("%s: invalid image shape %v", a, a.Shape)
	case len(a.Delta) != n*attack.ImageSize(a.Shape):
		return fmt.Errorf("%s: %d perturbation values, want %d images of %v", a, len(a.Delta), n, a.Shape)
	}
	return nil
}

// checkAdversarial checks that p's perturbations each belong to a split
// and norm of its records, in the records' order, once each.
func checkAdversarial(p *Part) error {
	type sn struct {
		split Split
		norm  Norm
	}
	order := map[sn][]int{}
	for i := range p.Records {
		r := &p.Records[i]
		order[sn{r.Split, r.Norm}] = append(order[sn{r.Split, r.Norm}], r.Index)
	}
	seen := map[string]bool{}
	for i := range p.Adversarial {
		a := &p.Adversarial[i]
		if seen[a.String()] {
			return fmt.Errorf("two sets of perturbations for %s", a)
		}
		seen[a.String()] = true
		if err := a.check(); err != nil {
			return err
		}
		if !slices.Equal(a.Index, order[sn{a.Split, a.Norm}]) {
			return fmt.Errorf("%s: the perturbations' images are not those of the records, in their order", a)
		}
	}
	return nil
}

// writeAdversarial writes the perturbations of p into the store's folder
// adversarial/NAME, replacing any folder there; nothing when p has none.
func (s *Store) writeAdversarial(p *Part) error {
	dir := filepath.Join(s.dir, AdversarialDir, p.Checkpoint)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if len(p.Adversarial) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range p.Adversarial {
		a := &p.Adversarial[i]
		deltaPath, indexPath := AdversarialFiles(s.dir, p.Checkpoint, a.Split, a.Norm, a.Refined)
		shape := []int{len(a.Index)}
		for _, d := range a.Shape {
			shape = append(shape, int(d))
		}
		if err := npy.WriteFile(deltaPath, &npy.Array{Shape: shape, Data: a.Delta}); err != nil {
			return err
		}
		idx := &npy.IntArray{Shape: []int{len(a.Index), 2}, Data: make([]int, 0, 2*len(a.Index))}
		for j, ix := range a.Index {
			idx.Data = append(idx.Data, ix, a.AdvPred[j])
		}
		if err := atomicfile.Write(indexPath, 0o644, func(w io.Writer) error { return npy.WriteInts(w, idx) }); err != nil {
			return err
		}
	}
	return nil
}

// cleanAdversarial removes the perturbations of checkpoints that are not
// finished (the leftovers of an interrupted commit) and temporary files.
// s.mu is held or s is not shared yet.
func (s *Store) cleanAdversarial() error {
	root := filepath.Join(s.dir, AdversarialDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		path := filepath.Join(root, e.Name())
		if _, ok := s.parts[e.Name()]; !ok || !e.IsDir() {
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("removing unfinished perturbations: %w", err)
			}
			continue
		}
		if err := atomicfile.RemoveTemp(path); err != nil {
			return err
		}
	}
	return nil
}

// HasAdversarial reports whether the finished checkpoint was committed
// with saved perturbations.
func (s *Store) HasAdversarial(checkpoint string) bool {
	st, err := os.Stat(filepath.Join(s.dir, AdversarialDir, checkpoint))
	return err == nil && st.IsDir()
}

// ReadAdversarial reads the saved perturbations of a checkpoint, split and
// norm from the audit directory dir: of the refined points when refined,
// else of DeepFool's. A checkpoint audited without them (or, for the
// refined ones, without refinement or before they were saved) gives an
// error wrapping fs.ErrNotExist. It checks that both files agree.
func ReadAdversarial(dir, checkpoint string, split Split, norm Norm, refined bool) (*Adversarial, error) {
	deltaPath, indexPath := AdversarialFiles(dir, checkpoint, split, norm, refined)
	d, err := npy.ReadFile(deltaPath)
	if err != nil {
		return nil, fmt.Errorf("auditor: %w", err)
	}
	ix, err := npy.ReadIntsFile(indexPath)
	if err != nil {
		return nil, fmt.Errorf("auditor: %w", err)
	}
	if len(d.Shape) < 2 || len(ix.Shape) != 2 || ix.Shape[1] != 2 || ix.Shape[0] != d.Shape[0] {
		return nil, fmt.Errorf("auditor: %s is %v and %s %v: want [N, ...image] and [N, 2]", deltaPath, d.Shape, indexPath, ix.Shape)
	}
	a := &Adversarial{Split: split, Norm: norm, Refined: refined, Delta: d.Data}
	for _, v := range d.Shape[1:] {
		a.Shape = append(a.Shape, int64(v))
	}
	for i := range ix.Shape[0] {
		a.Index = append(a.Index, ix.Data[2*i])
		a.AdvPred = append(a.AdvPred, ix.Data[2*i+1])
	}
	if err := a.check(); err != nil {
		return nil, fmt.Errorf("auditor: %s: %w", deltaPath, err)
	}
	return a, nil
}

// adversarialOf returns the perturbations an attack found on the images
// im (as the classifier took them), in the layout and shape of the images
// as given, orig: point(i) is image i's perturbation and the prediction
// there, or nil and −1 where the attack found none. refined says whose
// points they are (see Adversarial).
func adversarialOf(split Split, norm Norm, refined bool, point func(i int) ([]float32, int), im, orig *Images) Adversarial {
	n := im.Len()
	d := len(im.X) / n
	a := Adversarial{Split: split, Norm: norm, Refined: refined, Index: slices.Clone(im.Index), AdvPred: make([]int, n), Delta: make([]float32, n*d)}
	for i := range n {
		var delta []float32
		delta, a.AdvPred[i] = point(i)
		copy(a.Delta[i*d:(i+1)*d], delta)
	}
	// Undo fitImages's transposition, so that x + δ holds for the images
	// as given.
	if orig.Layout != attack.LayoutAuto && im.Layout != orig.Layout && len(im.Shape) == 3 {
		a.Delta, _ = attack.ConvertLayout(a.Delta, im.Shape, im.Layout, orig.Layout)
	}
	a.Shape = slices.Clone(orig.Shape)
	if a.Shape == nil {
		a.Shape = slices.Clone(im.Shape)
	}
	if a.Shape == nil {
		a.Shape = []int64{int64(d)}
	}
	return a
}
