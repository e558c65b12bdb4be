// Command etcd is etcd's own server entry point, built from the module proxy
// because `go install` of etcd refuses its replace directives.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
