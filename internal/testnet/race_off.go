//go:build !race

package testnet

// raceBuild: see race_on.go.
const raceBuild = false
