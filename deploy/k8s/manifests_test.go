package k8s

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/marginaudit/marginaudit/auditor/shard"
)

// decode reads a manifest into v with the API types, refusing unknown
// fields, so a misspelt field fails as it would in kubectl apply.
func decode(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// job decodes a batch/v1 Job with one container and returns them.
func job(t *testing.T, file string) (*batchv1.Job, *corev1.Container) {
	t.Helper()
	var j batchv1.Job
	decode(t, file, &j)
	if j.APIVersion != "batch/v1" || j.Kind != "Job" || j.Name == "" {
		t.Fatalf("%s: %s %s %q, want a named batch/v1 Job", file, j.APIVersion, j.Kind, j.Name)
	}
	if n := len(j.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%s: %d containers, want 1", file, n)
	}
	return &j, &j.Spec.Template.Spec.Containers[0]
}

// shardCount returns the container's MARGINAUDIT_SHARD_COUNT.
func shardCount(t *testing.T, file string, c *corev1.Container) int {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == shard.CountEnv {
			n, err := strconv.Atoi(e.Value)
			if err != nil {
				t.Fatalf("%s: %s=%q is not a number", file, e.Name, e.Value)
			}
			return n
		}
	}
	t.Fatalf("%s: no %s in the environment", file, shard.CountEnv)
	return 0
}

// checkVolume checks that the pod mounts the claim of pvc.yaml at /work,
// where the commands read and write.
func checkVolume(t *testing.T, file string, j *batchv1.Job, c *corev1.Container) {
	t.Helper()
	var pvc corev1.PersistentVolumeClaim
	decode(t, "pvc.yaml", &pvc)
	if !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany) {
		t.Errorf("pvc.yaml: access modes %v: the pods share it, want ReadWriteMany", pvc.Spec.AccessModes)
	}
	vols := map[string]string{}
	for _, v := range j.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			vols[v.Name] = v.PersistentVolumeClaim.ClaimName
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		claim, ok := vols[m.Name]
		if !ok {
			t.Errorf("%s: mount %q is of no volume of a claim", file, m.Name)
		}
		mounted = mounted || (claim == pvc.Name && m.MountPath == "/work")
	}
	if !mounted {
		t.Errorf("%s: claim %q is not mounted at /work", file, pvc.Name)
	}
}

// show formats an optional count.
func show(n *int32) string {
	if n == nil {
		return "unset"
	}
	return strconv.Itoa(int(*n))
}

func TestAuditJob(t *testing.T) {
	const file = "audit-job.yaml"
	j, c := job(t, file)
	s := j.Spec
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("%s: completionMode %v, want Indexed", file, s.CompletionMode)
	}
	if n := shardCount(t, file, c); s.Completions == nil || *s.Completions != int32(n) {
		t.Errorf("%s: completions %s, want %d as %s", file, show(s.Completions), n, shard.CountEnv)
	}
	if s.Parallelism == nil || *s.Parallelism < 1 {
		t.Errorf("%s: parallelism %s, want at least 1", file, show(s.Parallelism))
	}
	if p := s.Template.Spec.RestartPolicy; p != corev1.RestartPolicyOnFailure && p != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %q, want OnFailure or Never (a Job's)", file, p)
	}
	cmd := strings.Join(append(c.Command, c.Args...), " ")
	for _, want := range []string{"marginaudit", " audit ", "--shard auto", "--out /work/audit/shard-$JOB_COMPLETION_INDEX"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("%s: command %q lacks %q", file, cmd, want)
		}
	}
	checkVolume(t, file, j, c)
}

func TestMergeJob(t *testing.T) {
	const file = "merge-job.yaml"
	j, c := job(t, file)
	_, audit := job(t, "audit-job.yaml")
	if n, want := shardCount(t, file, c), shardCount(t, "audit-job.yaml", audit); n != want {
		t.Errorf("%s: %s=%d, but the audit Job has %d shards", file, shard.CountEnv, n, want)
	}
	if j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion {
		t.Errorf("%s: the merge is one pod, not an Indexed Job", file)
	}
	cmd := strings.Join(append(c.Command, c.Args...), " ")
	for _, want := range []string{"marginaudit merge", "/work/audit/shard-$i", "--out /work/audit/merged"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("%s: command %q lacks %q", file, cmd, want)
		}
	}
	checkVolume(t, file, j, c)
}
