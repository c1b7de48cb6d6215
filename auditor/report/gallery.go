package report

import (
	"cmp"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/trainer/dataset"
)

// The gallery: per audit, split and norm, at the chosen epochs, the
// correctly classified images closest to and farthest from the decision
// boundary, each drawn clean, adversarial (x + δ) and as the perturbation
// δ, with the margin that is δ's norm: DeepFool's point and margin, or
// with Options.Refined the refined point (FMN's) and margin_refined. An
// audit refined before the refined points were saved shows DeepFool's
// points and margins, with a note. It needs the perturbations that
// `audit --save-adversarial` saved (auditor.AdversarialDir) and the clean
// images: a data set read by the name in settings.json (Options.DataDir,
// else where `audit --data` finds it), or the --images array named there.
// Without either, the report says in a note why there is no gallery.

// GalleryImages is how many images of each end of the margin distribution
// the gallery shows per audit, epoch, split and norm.
const GalleryImages = 4

// FigGallery is the kind of the gallery figures.
const FigGallery = "gallery"

// GalleryImage is one image of the gallery: a correctly classified image
// closest to ("closest") or farthest from ("farthest") the boundary among
// those of its (audit, epoch, split, norm) with a margin and a saved
// perturbation.
type GalleryImage struct {
	Audit   string        `json:"audit"`
	Epoch   int           `json:"epoch"`
	Split   auditor.Split `json:"split"`
	Norm    auditor.Norm  `json:"norm"`
	End     string        `json:"end"`   // "closest" or "farthest"
	Index   int           `json:"index"` // in the data set
	Label   int           `json:"label"`
	AdvPred int           `json:"adversarial_pred"` // the class at x + δ
	// Margin is the norm of δ: DeepFool's margin, or the refined one
	// when Refined (x + δ is then the point FMN refined).
	Margin  auditor.Float `json:"margin"`
	Refined bool          `json:"refined"`
	// Scale is the largest |δ| of the image's perturbation, drawn as white
	// (and −Scale as black, 0 as grey).
	Scale auditor.Float `json:"scale"`
}

// galleryCell is what the gallery draws for one (epoch, split, norm).
type galleryCell struct {
	closest, farthest []galleryPick
	shape             []int64  // of one clean image
	classes           []string // class names, nil when unknown
}

type galleryPick struct {
	GalleryImage
	clean, delta []float32
}

// cleanImages reads an audit's clean images by index.
type cleanImages struct {
	shape   []int64 // of one image, as audited
	classes []string
	get     func(index int) ([]float32, bool)
}

// gallery picks the images of a's gallery at epochs and reads them; it
// returns why there is none when it cannot draw one.
func gallery(a *audit, epochs []int, dataDir string) (map[cellKey]*galleryCell, []string, error) {
	if st, err := os.Stat(filepath.Join(a.Dir, auditor.AdversarialDir)); err != nil || !st.IsDir() {
		return nil, []string{fmt.Sprintf("audit %s has no saved perturbations (audit with --save-adversarial): no gallery", a.Label)}, nil
	}
	cells := map[cellKey]*galleryCell{}
	var missing, unrefined []string
	for _, e := range epochs {
		for _, s := range a.splits {
			for _, n := range a.norms {
				where := fmt.Sprintf("%s %s %s", a.at(e), s, normName(n))
				adv, err := auditor.ReadAdversarial(a.Dir, a.names[e], s, n, a.refined)
				recs := a.records
				if a.refined && errors.Is(err, fs.ErrNotExist) {
					// Refined before the refined points were saved:
					// DeepFool's points, with their own margins.
					adv, err = auditor.ReadAdversarial(a.Dir, a.names[e], s, n, false)
					recs = a.folder.Records()
					if err == nil {
						unrefined = append(unrefined, where)
					}
				}
				if errors.Is(err, fs.ErrNotExist) {
					missing = append(missing, where)
					continue
				}
				if err != nil {
					return nil, nil, fmt.Errorf("report: %w", err)
				}
				if c := pickGallery(a, recs, e, s, n, adv); c != nil {
					cells[cellKey{e, s, n}] = c
				}
			}
		}
	}
	var notes []string
	if len(missing) > 0 {
		notes = append(notes, fmt.Sprintf("audit %s has no saved perturbations at %s (audited without --save-adversarial): left out of the gallery", a.Label, strings.Join(missing, ", ")))
	}
	if len(unrefined) > 0 {
		notes = append(notes, fmt.Sprintf("audit %s saved DeepFool's perturbations only at %s (refined before the refined points were saved): its gallery there shows DeepFool's points and margins, not the refined ones", a.Label, strings.Join(unrefined, ", ")))
	}
	if len(cells) == 0 {
		return nil, notes, nil
	}
	for _, s := range a.splits {
		imgs, err := readCleanImages(a, s, dataDir)
		if err != nil {
			return nil, append(notes, fmt.Sprintf("audit %s: no gallery: cannot read the clean images of the %s split: %v", a.Label, s, err)), nil
		}
		if _, ok := picture(make([]float32, attack.ImageSize(imgs.shape)), imgs.shape, func(float64) float64 { return 0 }); !ok {
			return nil, append(notes, fmt.Sprintf("audit %s: no gallery: images of shape %v are not pictures (want [C, H, W] or [H, W, C] with 1 or 3 channels, [H, W], or a square number of pixels)", a.Label, imgs.shape)), nil
		}
		for k, c := range cells {
			if k.split != s {
				continue
			}
			c.shape, c.classes = imgs.shape, imgs.classes
			for _, ps := range [][]galleryPick{c.closest, c.farthest} {
				for i := range ps {
					x, ok := imgs.get(ps[i].Index)
					if !ok || len(x) != len(ps[i].delta) {
						return nil, append(notes, fmt.Sprintf("audit %s: no gallery: image %d of the %s split is not in %s, or not of the shape of its saved perturbation", a.Label, ps[i].Index, s, a.settings.Data)), nil
					}
					ps[i].clean = x
				}
			}
		}
	}
	return cells, notes, nil
}

// pickGallery picks the GalleryImages correctly classified images with
// the smallest and the largest margins of (epoch, split, norm) among those
// with a saved perturbation, ties broken by index, no image twice; nil
// when there is none. recs holds the margins whose points adv holds: the
// refined ones for refined perturbations, else DeepFool's.
func pickGallery(a *audit, recs []auditor.Record, epoch int, split auditor.Split, norm auditor.Norm, adv *auditor.Adversarial) *galleryCell {
	row := make(map[int]int, len(adv.Index))
	for i, ix := range adv.Index {
		row[ix] = i
	}
	d := len(adv.Delta) / max(len(adv.Index), 1)
	var picks []galleryPick
	for i := range recs {
		r := &recs[i]
		if r.Epoch != epoch || r.Split != split || r.Norm != norm || !r.Correct || !r.Success {
			continue
		}
		j, ok := row[r.Index]
		if !ok || adv.AdvPred[j] < 0 {
			continue
		}
		delta := adv.Delta[j*d : (j+1)*d]
		scale := 0.0
		for _, v := range delta {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		picks = append(picks, galleryPick{GalleryImage: GalleryImage{Audit: a.Label, Epoch: epoch, Split: split, Norm: norm,
			Index: r.Index, Label: r.Label, AdvPred: adv.AdvPred[j], Margin: auditor.Float(r.Margin), Refined: adv.Refined, Scale: auditor.Float(scale)}, delta: delta})
	}
	if len(picks) == 0 {
		return nil
	}
	slices.SortFunc(picks, func(x, y galleryPick) int {
		return cmp.Or(cmp.Compare(x.Margin, y.Margin), cmp.Compare(x.Index, y.Index))
	})
	// With fewer than 2·GalleryImages images, each is shown once: the
	// smaller half as closest, the larger as farthest.
	kc, kf := min(GalleryImages, (len(picks)+1)/2), min(GalleryImages, len(picks)/2)
	c := &galleryCell{closest: slices.Clone(picks[:kc]), farthest: slices.Clone(picks[len(picks)-kf:])}
	slices.Reverse(c.farthest)
	for i := range c.closest {
		c.closest[i].End = "closest"
	}
	for i := range c.farthest {
		c.farthest[i].End = "farthest"
	}
	return c
}

// readCleanImages reads the clean images of a split of audit a: the data
// set named in its settings, or the --images array ("X.npy,Y.npy").
func readCleanImages(a *audit, split auditor.Split, dataDir string) (*cleanImages, error) {
	name := a.settings.Data
	if info, err := dataset.Lookup(name); err == nil {
		d, err := dataset.Load(info.Name, string(split), dataDir)
		if err != nil {
			return nil, err
		}
		size := d.ImageSize()
		return &cleanImages{shape: []int64{int64(d.C), int64(d.H), int64(d.W)}, classes: info.ClassNames,
			get: func(i int) ([]float32, bool) {
				if i < 0 || i >= d.N {
					return nil, false
				}
				return d.Images[i*size : (i+1)*size], true
			}}, nil
	}
	images, _, ok := strings.Cut(name, ",")
	if !ok || !strings.HasSuffix(images, ".npy") {
		return nil, fmt.Errorf("data %q is neither a known data set nor an --images array", name)
	}
	x, err := npy.ReadFile(images)
	if err != nil {
		return nil, err
	}
	if len(x.Shape) < 2 || x.Shape[0] == 0 {
		return nil, fmt.Errorf("%s: shape %v holds no images", images, x.Shape)
	}
	var shape []int64
	for _, v := range x.Shape[1:] {
		shape = append(shape, int64(v))
	}
	size := len(x.Data) / x.Shape[0]
	return &cleanImages{shape: shape, get: func(i int) ([]float32, bool) {
		if i < 0 || i >= x.Shape[0] {
			return nil, false
		}
		return x.Data[i*size : (i+1)*size], true
	}}, nil
}

// picture converts an image of the given shape into an RGBA picture, each
// value v mapped by tone to [0, 1]: [C, H, W] or [H, W, C] with one or
// three channels, [H, W], or a square [H·H]. False for other shapes.
func picture(x []float32, shape []int64, tone func(v float64) float64) (*image.RGBA, bool) {
	var c, h, w int
	chw := true // where the channels are
	switch {
	case len(shape) == 3 && (shape[0] == 1 || shape[0] == 3):
		c, h, w = int(shape[0]), int(shape[1]), int(shape[2])
	case len(shape) == 3 && (shape[2] == 1 || shape[2] == 3):
		c, h, w, chw = int(shape[2]), int(shape[0]), int(shape[1]), false
	case len(shape) == 2:
		c, h, w = 1, int(shape[0]), int(shape[1])
	case len(shape) == 1 && isSquare(int(shape[0])):
		c, h = 1, int(math.Round(math.Sqrt(float64(shape[0]))))
		w = h
	default:
		return nil, false
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for xx := range w {
			var rgb [3]uint8
			for ch := range 3 {
				src := min(ch, c-1)
				var idx int
				if chw {
					idx = (src*h+y)*w + xx
				} else {
					idx = (y*w+xx)*c + src
				}
				v := tone(float64(x[idx]))
				rgb[ch] = uint8(math.Round(255 * math.Min(1, math.Max(0, v))))
			}
			img.SetRGBA(xx, y, color.RGBA{rgb[0], rgb[1], rgb[2], 0xff})
		}
	}
	return img, true
}

func isSquare(n int) bool {
	r := int(math.Round(math.Sqrt(float64(n))))
	return n > 0 && r*r == n
}

// galleryFigure draws the gallery of one split and norm of a: per epoch a
// row of the images closest to the boundary and a row of those farthest
// from it, each as clean | adversarial | perturbation. It returns a nil
// figure when no epoch has images to show.
func galleryFigure(a *audit, split auditor.Split, norm auditor.Norm, epochs []int, cells map[cellKey]*galleryCell, opts *Options) (*figure, Figure, []GalleryImage) {
	type row struct {
		title string
		picks []galleryPick
	}
	var rows []row
	var shown []GalleryImage
	for _, e := range epochs {
		c := cells[cellKey{e, split, norm}]
		if c == nil || c.closest[0].clean == nil {
			continue
		}
		rows = append(rows, row{fmt.Sprintf("%s: the %d correctly classified images closest to the boundary (smallest %s margins)", a.at(e), len(c.closest), normName(norm)), c.closest})
		if len(c.farthest) > 0 {
			rows = append(rows, row{fmt.Sprintf("%s: the %d farthest from it (largest margins)", a.at(e), len(c.farthest)), c.farthest})
		}
		for _, ps := range [][]galleryPick{c.closest, c.farthest} {
			for _, p := range ps {
				shown = append(shown, p.GalleryImage)
			}
		}
	}
	if len(rows) == 0 {
		return nil, Figure{}, nil
	}
	lo, hi := 0.0, 1.0
	if r, ok := a.pixelRange(); ok {
		lo, hi = r[0], r[1]
	}
	first := cells[cellKey{rows[0].picks[0].Epoch, split, norm}]
	shape, classes := first.shape, first.classes

	const (
		pad     = vg.Length(6)
		tileGap = vg.Length(2)
		gap     = vg.Length(14) // between the triples
		width   = 10 * vg.Inch
	)
	label, small := textStyle(9), textStyle(8)
	triple := (width - 2*pad - (GalleryImages-1)*gap) / GalleryImages
	tile := (triple - 2*tileGap) / 3
	rowH := label.Height("Ag") + 4 + tile + 2*small.Height("Ag") + 10
	tone := func(v float64) float64 { return (v - lo) / (hi - lo) }
	body := func(dc draw.Canvas) {
		y := dc.Max.Y
		for _, r := range rows {
			lt := label
			lt.XAlign, lt.YAlign = draw.XLeft, draw.YTop
			dc.FillText(lt, vg.Point{X: dc.Min.X + pad, Y: y}, r.title)
			y -= label.Height(r.title) + 4
			for i, p := range r.picks {
				x := dc.Min.X + pad + vg.Length(i)*(triple+gap)
				adv := make([]float32, len(p.clean))
				for j, v := range p.clean {
					adv[j] = float32(math.Min(hi, math.Max(lo, float64(v)+float64(p.delta[j]))))
				}
				s := float64(p.Scale)
				pert := func(v float64) float64 {
					if s == 0 {
						return 0.5
					}
					return 0.5 + v/(2*s)
				}
				for k, im := range []struct {
					x    []float32
					tone func(float64) float64
				}{{p.clean, tone}, {adv, tone}, {p.delta, pert}} {
					pic, ok := picture(im.x, shape, im.tone)
					if !ok {
						continue
					}
					x0 := x + vg.Length(k)*(tile+tileGap)
					dc.DrawImage(vg.Rectangle{Min: vg.Point{X: x0, Y: y - tile}, Max: vg.Point{X: x0 + tile, Y: y}}, upscale(pic, int(math.Ceil(float64(tile)/72*figureDPI))))
				}
				st := small
				st.XAlign, st.YAlign = draw.XLeft, draw.YTop
				line1 := fmt.Sprintf("#%d: %s → %s", p.Index, className(classes, p.Label), className(classes, p.AdvPred))
				line2 := fmt.Sprintf("margin %s, |δ| ≤ %s", fmtG(float64(p.Margin)), fmtG(s))
				dc.FillText(st, vg.Point{X: x, Y: y - tile - 3}, line1)
				dc.FillText(st, vg.Point{X: x, Y: y - tile - 3 - small.Height(line1)}, line2)
			}
			y -= rowH - label.Height(r.title) - 4
		}
	}
	title := fmt.Sprintf("%s: images closest to and farthest from the boundary, %s split, %s (%s)", a.Label, split, normName(norm), dataName(a))
	f := &figure{title: title, body: body, w: width, h: vg.Length(len(rows))*rowH + 3*pad + textStyle(14).Height(title)}
	caption := fmt.Sprintf("Audit %s on %s, %s split, %s. Per %s, the %d correctly classified images with the smallest and the %d with the largest %s margins, among those with a saved perturbation (`audit --save-adversarial`); each as clean image | adversarial image x + δ %s (clipped to the pixel range [%s, %s]) | perturbation δ. Each perturbation is drawn on its own scale: grey is 0, white +s and black −s, where s = max |δ| is given under it. Under each: the image's index in the data set, its true class → the class predicted at x + δ, and its margin, the norm of δ. Margins: %s.",
		a.Label, dataName(a), split, a.listed(epochsOf(shown)), a.unit(), GalleryImages, GalleryImages, normName(norm), galleryPoints(shown), fmtG(lo), fmtG(hi), galleryMargins(a, norm, shown, opts))
	return f, Figure{Kind: FigGallery, Caption: caption, Audit: a.Label, Split: split, Norm: norm}, shown
}

// galleryPoints says whose adversarial points the gallery images show.
func galleryPoints(shown []GalleryImage) string {
	switch refined := refinedCount(shown); {
	case refined == len(shown):
		return "that FMN refined, from DeepFool's point or from a search where DeepFool failed (the point whose norm is the refined margin)"
	case refined == 0:
		return "that DeepFool found (unrefined)"
	}
	return "that FMN refined where the audit saved the refined points, else the one DeepFool found (checkpoints refined before the refined points were saved)"
}

// galleryMargins describes the margins under the gallery images: refined
// where their points are, else DeepFool's.
func galleryMargins(a *audit, norm auditor.Norm, shown []GalleryImage, opts *Options) string {
	o := *opts
	o.Refined = refinedCount(shown) > 0
	return attackSettings(a, norm, &o)
}

// refinedCount counts the images that show refined points.
func refinedCount(shown []GalleryImage) int {
	n := 0
	for _, g := range shown {
		if g.Refined {
			n++
		}
	}
	return n
}

// epochsOf returns the distinct epochs of the images, in order.
func epochsOf(imgs []GalleryImage) []int {
	var out []int
	for _, g := range imgs {
		if !slices.Contains(out, g.Epoch) {
			out = append(out, g.Epoch)
		}
	}
	return out
}

// className names class k: its name where known, else its index.
func className(names []string, k int) string {
	if k >= 0 && k < len(names) {
		return names[k]
	}
	return strconv.Itoa(k)
}

// upscale returns img enlarged to at least px pixels wide by repeating
// pixels (nearest neighbour), so that viewers do not blur small images.
func upscale(img *image.RGBA, px int) image.Image {
	k := max(1, px/img.Bounds().Dx())
	if k == 1 {
		return img
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()*k, b.Dy()*k))
	for y := range b.Dy() * k {
		for x := range b.Dx() * k {
			out.SetRGBA(x, y, img.RGBAAt(x/k, y/k))
		}
	}
	return out
}
