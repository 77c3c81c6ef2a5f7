//go:build race

package testnet

// raceBuild: the test binary runs with the race detector, so the daemons
// SamizdatBinary builds do too.
const raceBuild = true
