package main

import (
	"errors"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor/shard"
)

// shardFlag is audit's --shard.
func shardFlag() cli.Flag {
	return &cli.StringFlag{Name: "shard", Usage: "audit only shard `I/N` of the work (0 ≤ I < N), for 'marginaudit merge'; auto: " +
		"from Slurm's SLURM_ARRAY_TASK_ID or Kubernetes' JOB_COMPLETION_INDEX with " + shard.CountEnv}
}

// shardSpec reads --shard: nil when not given.
func shardSpec(c *cli.Context) (*shard.Spec, error) {
	v := c.String("shard")
	if v == "" {
		return nil, nil
	}
	var sp shard.Spec
	var err error
	if v == "auto" {
		sp, err = shard.FromEnv(os.Getenv)
	} else {
		sp, err = shard.Parse(v)
	}
	if err != nil {
		return nil, usagef("audit", "--shard: %v", err)
	}
	return &sp, nil
}

// shardUsage makes an audit's error about its division into shards (too
// many shards for the work) a usage error.
func shardUsage(err error) error {
	if errors.Is(err, shard.ErrSpec) {
		return usagef("audit", "--shard: %v", err)
	}
	return err
}
