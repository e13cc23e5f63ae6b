// Command etcd runs the pinned etcd server; the module exists so the exact
// version is fixed by this folder's go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
