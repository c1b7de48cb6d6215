package shard

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Item is the work of one (checkpoint, split) of an audit.
type Item struct {
	Checkpoint string `json:"checkpoint"` // file name of the checkpoint
	Split      string `json:"split"`
	Images     int    `json:"images"` // images of the split, ≥ 1
	// Weight is the cost of one image, ≥ 1: the attack runs it takes.
	Weight int `json:"weight"`
}

// Cost is the item's cost: Images × Weight.
func (it Item) Cost() int { return it.Images * it.Weight }

// Cost64 is Cost in 64 bits.
func (it Item) Cost64() int64 { return int64(it.Images) * int64(it.Weight) }

// Unit is one shard's piece of an Item: the images at positions Lo to
// Hi−1 of the split's audited images.
type Unit struct {
	Checkpoint string `json:"checkpoint"`
	Split      string `json:"split"`
	Lo         int    `json:"lo"` // position of the first image
	Hi         int    `json:"hi"` // one past the position of the last image
}

// Len is the number of images of the unit.
func (u Unit) Len() int { return u.Hi - u.Lo }

// String names the unit as "epoch-001.onnx test images 0-99".
func (u Unit) String() string {
	return fmt.Sprintf("%s %s images %d-%d", u.Checkpoint, u.Split, u.Lo, u.Hi-1)
}

// Spec names one shard of Count: Index is in [0, Count).
type Spec struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// String formats the shard as "I/N".
func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ErrSpec is the error, wrapped, of a shard that is not I/N with
// 0 ≤ I < N, or of scheduler variables that do not say which shard.
var ErrSpec = errors.New("shard")

// Parse reads a shard given as "I/N", with 0 ≤ I < N.
func Parse(s string) (Spec, error) {
	i, n, ok := strings.Cut(strings.TrimSpace(s), "/")
	index, err1 := strconv.Atoi(i)
	count, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil {
		return Spec{}, fmt.Errorf("%w %q: want I/N, such as 0/4", ErrSpec, s)
	}
	return check(Spec{Index: index, Count: count}, s)
}

func check(sp Spec, what string) (Spec, error) {
	if sp.Count < 1 || sp.Index < 0 || sp.Index >= sp.Count {
		return Spec{}, fmt.Errorf("%w %s: want 0 ≤ I < N", ErrSpec, what)
	}
	return sp, nil
}

// The environment variables that FromEnv reads.
const (
	// Set by Slurm in each task of a job array.
	SlurmTaskID    = "SLURM_ARRAY_TASK_ID"
	SlurmTaskMin   = "SLURM_ARRAY_TASK_MIN"
	SlurmTaskCount = "SLURM_ARRAY_TASK_COUNT"
	// Set by Kubernetes in each pod of an Indexed Job.
	JobCompletionIndex = "JOB_COMPLETION_INDEX"
	// The number of completions of an Indexed Job, which Kubernetes does
	// not put in the environment: the manifest sets it.
	CountEnv = "MARGINAUDIT_SHARD_COUNT"
)

// FromEnv finds the shard in the environment that getenv reads (os.Getenv):
// a Slurm array task is shard SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN of
// SLURM_ARRAY_TASK_COUNT; a Kubernetes Indexed Job's pod is shard
// JOB_COMPLETION_INDEX of MARGINAUDIT_SHARD_COUNT. It returns an error
// wrapping ErrSpec when neither is set, rather than guess. Arrays with a
// step other than 1 (--array=0-9:2) are refused, since their task IDs minus
// the first are not 0 to N−1.
func FromEnv(getenv func(string) string) (Spec, error) {
	if id := getenv(SlurmTaskID); id != "" {
		if step := getenv("SLURM_ARRAY_TASK_STEP"); step != "" && step != "1" {
			return Spec{}, fmt.Errorf("%w: Slurm array step %s: want an array without a step, such as --array=0-3", ErrSpec, step)
		}
		return fromVars(getenv, SlurmTaskID, SlurmTaskMin, SlurmTaskCount)
	}
	if getenv(JobCompletionIndex) != "" {
		return fromVars(getenv, JobCompletionIndex, "", CountEnv)
	}
	return Spec{}, fmt.Errorf("%w auto: neither %s (Slurm job array) nor %s (Kubernetes Indexed Job) is set; give --shard I/N",
		ErrSpec, SlurmTaskID, JobCompletionIndex)
}

// fromVars reads the shard index from the variable id, less the variable
// min when given, and the count from count.
func fromVars(getenv func(string) string, id, min, count string) (Spec, error) {
	num := func(name string) (int, error) {
		v, err := strconv.Atoi(getenv(name))
		if err != nil {
			return 0, fmt.Errorf("%w auto: %s=%q is not a whole number", ErrSpec, name, getenv(name))
		}
		return v, nil
	}
	var sp Spec
	var err error
	if sp.Index, err = num(id); err != nil {
		return Spec{}, err
	}
	if min != "" {
		first, err := num(min)
		if err != nil {
			return Spec{}, err
		}
		sp.Index -= first
	}
	if sp.Count, err = num(count); err != nil {
		return Spec{}, err
	}
	return check(sp, fmt.Sprintf("auto (%s from %s, count %s)", sp, id, count))
}

// Bounds of the work Partition divides, far above any audit's, so that
// its arithmetic never overflows.
const (
	maxImages = 1 << 24 // images of an item, cost of an image, shards
	maxCost   = 1 << 36 // total cost
)

// Partition divides items among n shards as the package documentation
// says and returns each shard's units, in the order of items. Every image
// of every item is in exactly one unit. It fails when n < 1, when an item
// is invalid or repeated, and when there are more shards than images.
func Partition(items []Item, n int) ([][]Unit, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %d shards: want at least 1", ErrSpec, n)
	}
	seen := map[[2]string]bool{}
	total, cost := 0, int64(0)
	for _, it := range items {
		key := [2]string{it.Checkpoint, it.Split}
		switch {
		case it.Images < 1 || it.Weight < 1:
			return nil, fmt.Errorf("shard: %s %s: %d images of cost %d: want at least 1 of each", it.Checkpoint, it.Split, it.Images, it.Weight)
		case seen[key]:
			return nil, fmt.Errorf("shard: %s %s is listed twice", it.Checkpoint, it.Split)
		}
		seen[key] = true
		total += it.Images
		if cost += it.Cost64(); it.Images > maxImages || it.Weight > maxImages || cost > maxCost {
			return nil, fmt.Errorf("shard: %s %s: %d images of cost %d: more work than an audit can have", it.Checkpoint, it.Split, it.Images, it.Weight)
		}
	}
	if n > maxImages {
		return nil, fmt.Errorf("%w: %d shards: want at most %d", ErrSpec, n, maxImages)
	}
	var shards [][]Unit
	if n <= len(items) {
		shards = wholeItems(items, n)
	} else {
		shards = imageRanges(items, n)
	}
	for i, units := range shards {
		if len(units) == 0 {
			return nil, fmt.Errorf("%w: %d shards for %d images: shard %d would have none; use at most %d", ErrSpec, n, total, i, total)
		}
	}
	return shards, nil
}

// wholeItems gives each item whole to the least loaded of n shards,
// largest item first (ties in the order of items, and to the lower shard).
// When an item goes to the most loaded shard, that shard was the least
// loaded before it, so shards differ by at most one item's cost.
func wholeItems(items []Item, n int) [][]Unit {
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(items[b].Cost(), items[a].Cost()) })
	load := make([]int, n)
	owner := make([]int, len(items))
	for _, i := range order {
		s := 0
		for k := range load {
			if load[k] < load[s] {
				s = k
			}
		}
		owner[i] = s
		load[s] += items[i].Cost()
	}
	shards := make([][]Unit, n)
	for i, it := range items {
		shards[owner[i]] = append(shards[owner[i]], Unit{Checkpoint: it.Checkpoint, Split: it.Split, Lo: 0, Hi: it.Images})
	}
	return shards
}

// imageRanges lays the images of all items end to end, each as long as
// its cost, cuts the line into n equal stretches and gives each image to
// the stretch that holds its midpoint.
func imageRanges(items []Item, n int) [][]Unit {
	var total int64
	for _, it := range items {
		total += int64(it.Cost())
	}
	shards := make([][]Unit, n)
	n64 := int64(n)
	var start int64 // cost of the items before it
	for _, it := range items {
		w := int64(it.Weight)
		// Image j's midpoint start + (j+½)·w lies in stretches 0…s when
		// it is below (s+1)·total/n, that is when 2jwn < upTo(s), doubled
		// to stay in integers.
		upTo := func(s int64) int64 { return 2*total*(s+1) - 2*start*n64 - w*n64 }
		lo := 0
		for s := start * n64 / total; lo < it.Images; s++ {
			hi := 0
			if y := upTo(s); y > 0 {
				hi = int(min((y+2*w*n64-1)/(2*w*n64), int64(it.Images)))
			}
			if hi > lo {
				shards[s] = append(shards[s], Unit{Checkpoint: it.Checkpoint, Split: it.Split, Lo: lo, Hi: hi})
				lo = hi
			}
		}
		start += it.Cost64()
	}
	return shards
}
