//go:build !wasip1

// Command badimport only means something when built for wasip1 (see main.go).
package main

func main() {}
