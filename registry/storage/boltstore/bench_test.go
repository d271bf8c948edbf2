package boltstore

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPutVersion measures storing a version (one fsynced transaction each).
func BenchmarkPutVersion(b *testing.B) {
	s := openTest(b, nil)
	d, err := s.PutBlob(bg, make([]byte, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	manifest := json.RawMessage(`{"abi":1,"name":"github","version":"1.0.0","actions":[{"name":"get_repo"}]}`)
	for i := 0; b.Loop(); i++ {
		v := Version{Name: "github", Version: fmt.Sprintf("1.0.%d", i), Digest: d, Manifest: manifest}
		if _, err := s.PutVersion(bg, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnection measures reading a connection and opening its secret.
func BenchmarkConnection(b *testing.B) {
	s := openTest(b, nil)
	for i := range 1000 {
		if err := s.CreateConnection(bg, testConnection(fmt.Sprintf("c%04d", i))); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	n := 0
	for b.Loop() {
		if _, err := s.Connection(bg, fmt.Sprintf("c%04d", n%1000)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "reads/s")
}

// BenchmarkKVSet measures a kv write into a scope of 100 entries (one fsynced transaction).
func BenchmarkKVSet(b *testing.B) {
	s := openTest(b, nil)
	val := []byte(`{"cursor":"2026-03-01T12:00:00Z","seen":12345}`)
	for i := 0; b.Loop(); i++ {
		if err := s.KVSet(bg, "github", "gh-main", fmt.Sprintf("k%d", i%100), val, 0); err != nil {
			b.Fatal(err)
		}
	}
}
