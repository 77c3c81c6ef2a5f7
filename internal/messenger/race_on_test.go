//go:build race

package messenger

// raceBuild shrinks the many-node tests under the race detector, which
// makes their crypto several times slower: CI runs every package with
// -race on two shared cores under go test's 10-minute limit. The full-size
// runs are the ones without -race (see docs/BENCHMARKS.md).
const raceBuild = true
