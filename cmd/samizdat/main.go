// Command samizdat is a private, peer-to-peer, end-to-end encrypted
// messenger. main only hands over to internal/cli.
package main

import (
	"context"
	"os"

	"github.com/samizdat-im/samizdat/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
