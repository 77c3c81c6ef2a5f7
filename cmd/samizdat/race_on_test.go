//go:build race

package main

// raceBuild: the test binary runs with the race detector, so the daemons
// it builds do too (issue 13: a race in a daemon must fail the e2e tests).
const raceBuild = true
