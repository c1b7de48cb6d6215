// Package k8s holds the Kubernetes manifests of a sharded audit (an
// Indexed Job over a shared volume, then a merge Job) and the test that
// decodes them with the official API types; it has no Go code of its own.
package k8s
