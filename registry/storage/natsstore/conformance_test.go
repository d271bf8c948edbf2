package natsstore

import (
	"testing"

	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/registry/storage/storagetest"
)

// The JetStream backend keeps every promise of the storage contract, as bbolt does.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return openTest(t, nil) })
}
