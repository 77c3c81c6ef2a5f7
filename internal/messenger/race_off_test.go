//go:build !race

package messenger

// raceBuild: see race_on_test.go.
const raceBuild = false
