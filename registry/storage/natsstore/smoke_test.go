package natsstore

import (
	"errors"
	"testing"

	"github.com/plugboard/plugboard/registry/storage"
)

func TestSmokeBatch(t *testing.T) {
	s := openTest(t, nil)
	tx, err := s.update(bg, s.state, func(t *txn) error {
		t.put("a", []byte("1"))
		t.put("b", []byte("2"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(tx.writes)
	e := must[entry](t)(s.get(bg, s.state, "b"))
	if string(e.val) != "2" || e.rev != tx.writes[1].rev {
		t.Fatalf("got %+v", e)
	}
	// A conflicting write: read a, someone else writes a, commit fails and retries.
	n := 0
	_, err = s.update(bg, s.state, func(t *txn) error {
		n++
		if _, err := t.get(bg, "a"); err != nil {
			return err
		}
		if n == 1 {
			if _, err := s.update(bg, s.state, func(t2 *txn) error { t2.put("a", []byte("x")); return nil }); err != nil {
				return err
			}
		}
		t.put("a", []byte("3"))
		t.put("c", []byte("3"))
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("err %v after %d attempts", err, n)
	}
	t.Log(errors.Is(err, storage.ErrNotFound))
}
