package main

// buildArgs are the arguments of `go build` for the binary the end-to-end
// tests run: with -race when the test binary has it, so that a data race
// in a daemon fails the test that drives it.
func buildArgs(rest ...string) []string {
	args := []string{"build"}
	if raceBuild {
		args = append(args, "-race")
	}
	return append(args, rest...)
}

// buildEnv is the cgo setting for buildArgs (the race detector needs cgo;
// otherwise the binary is built as it ships, without).
func buildEnv() string {
	if raceBuild {
		return "CGO_ENABLED=1"
	}
	return "CGO_ENABLED=0"
}
