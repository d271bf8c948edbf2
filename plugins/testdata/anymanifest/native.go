//go:build !wasip1

// Command anymanifest only does something when built for wasip1 (see main.go); natively it is
// an empty program, so `go vet` works on it.
package main

func main() {}
