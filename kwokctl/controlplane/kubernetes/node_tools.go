//go:build tools

package tools

// A real node for testing shards/deploy/ in a cluster where pods run
// (shards/deploy/real-node/): built only when named (build.sh kubelet kube-proxy).
import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
