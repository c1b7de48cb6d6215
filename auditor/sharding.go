package auditor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/marginaudit/marginaudit/auditor/shard"
)

// ShardFile is the manifest in a shard's audit folder (see shard.Manifest):
// which part of the whole audit the folder holds.
const ShardFile = shard.FileName

// shardPlan is the part of an audit that one shard does; a nil plan does
// the whole audit.
type shardPlan struct {
	manifest *shard.Manifest
	units    map[string][]shard.Unit // the shard's units by checkpoint
}

// planShard divides the work of the checkpoints ckpts as shard.Partition
// does and returns the part of shard cfg.Shard, or nil when cfg.Shard is
// nil. The work is one item per checkpoint and split, each image costing
// its DeepFool norms and PGD attacks. PGD draws its random starts from one
// generator over a split's images in order, so with PGD a split's images
// are never divided: then there may be at most as many shards as
// checkpoints × splits.
func planShard(cfg *Config, ckpts []Checkpoint) (*shardPlan, error) {
	if cfg.Shard == nil {
		return nil, nil
	}
	s := &cfg.Settings
	pgd := len(s.PGD.Norms) * len(s.PGD.Eps)
	var items []shard.Item
	for _, c := range ckpts {
		for _, split := range s.Splits {
			items = append(items, shard.Item{Checkpoint: c.Name, Split: string(split), Images: cfg.Data[split].Len(), Weight: len(s.Norms) + pgd})
		}
	}
	if pgd > 0 && cfg.Shard.Count > len(items) {
		return nil, fmt.Errorf("%w: shard %s: with PGD an audit divides into at most %d shards (checkpoints × splits), as PGD's random starts run over a split's images in order",
			shard.ErrSpec, cfg.Shard, len(items))
	}
	m, err := shard.NewManifest(items, *cfg.Shard)
	if err != nil {
		return nil, err
	}
	p := &shardPlan{manifest: m, units: map[string][]shard.Unit{}}
	for _, u := range m.Units {
		p.units[u.Checkpoint] = append(p.units[u.Checkpoint], u)
	}
	return p, nil
}

// checkpoints returns those of ckpts that the plan audits.
func (p *shardPlan) checkpoints(ckpts []Checkpoint) []Checkpoint {
	if p == nil {
		return ckpts
	}
	var out []Checkpoint
	for _, c := range ckpts {
		if p.units[c.Name] != nil {
			out = append(out, c)
		}
	}
	return out
}

// config returns the audit of checkpoint c that the plan does: only the
// splits of c's units, and of each only the images of its unit, which
// DeepFool attacks as the whole split's (Images.First).
func (p *shardPlan) config(cfg Config, c Checkpoint) Config {
	if p == nil {
		return cfg
	}
	cfg.Settings.Splits = nil
	data := map[Split]*Images{}
	for _, u := range p.units[c.Name] {
		split := Split(u.Split)
		im := *cfg.Data[split]
		d := len(im.X) / im.Len()
		im.X, im.Labels, im.Index = im.X[u.Lo*d:u.Hi*d], im.Labels[u.Lo:u.Hi], im.Index[u.Lo:u.Hi]
		im.First += u.Lo
		cfg.Settings.Splits = append(cfg.Settings.Splits, split)
		data[split] = &im
	}
	cfg.Data = data
	return cfg
}

// attach writes the plan's manifest into the store's folder, or checks
// the one there: a folder holds one shard of one division of the work
// for good. A nil plan (the whole audit) refuses a shard's folder, and a
// plan refuses a folder that holds finished checkpoints of a whole audit.
func (p *shardPlan) attach(store *Store) error {
	path := filepath.Join(store.Dir(), ShardFile)
	have, err := readManifest(path)
	switch {
	case err != nil:
		return err
	case p == nil && have != nil:
		return fmt.Errorf("auditor: %s holds shard %s of an audit; audit that shard there (--shard %s), or merge the shards", store.Dir(), have.Shard, have.Shard)
	case p == nil:
		return nil
	case have == nil && len(store.Finished()) > 0:
		return fmt.Errorf("auditor: %s holds an audit of all the work, not shard %s; give each shard a folder of its own", store.Dir(), p.manifest.Shard)
	case have == nil:
		return writeFile(path, p.manifest.Write)
	case !have.SameWork(p.manifest):
		return fmt.Errorf("auditor: %s holds shard %s of other work (%d units of %d checkpoints and splits), not shard %s of these %d checkpoints and splits; give each division of the work folders of its own",
			store.Dir(), have.Shard, len(have.Units), len(have.Items), p.manifest.Shard, len(p.manifest.Items))
	}
	return nil
}

// readManifest reads the shard manifest at path; nil when there is none.
func readManifest(path string) (*shard.Manifest, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditor: %w", err)
	}
	m, err := shard.ReadManifest(bytes.NewReader(data), path)
	if err != nil {
		return nil, fmt.Errorf("auditor: %w", err)
	}
	return m, nil
}
