package pdk

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
)

// pages serves items 0..n-1 in pages of size, with the next offset as the cursor.
func pages(n, size int, calls *int) func(string) ([]int, string, error) {
	return func(cursor string) ([]int, string, error) {
		*calls++
		start := 0
		if cursor != "" {
			start, _ = strconv.Atoi(cursor)
		}
		var items []int
		for i := start; i < min(start+size, n); i++ {
			items = append(items, i)
		}
		next := ""
		if start+size < n {
			next = strconv.Itoa(start + size)
		}
		return items, next, nil
	}
}

func TestPaginate(t *testing.T) {
	tests := []struct {
		name      string
		n, size   int
		limit     int
		wantLen   int
		wantCalls int
	}{
		{"all pages without a limit", 25, 10, 0, 25, 3},
		{"stops as soon as the limit is reached", 100, 10, 15, 15, 2},
		{"a limit on a page boundary fetches no extra page", 100, 10, 20, 20, 2},
		{"a limit above the total returns everything", 7, 10, 50, 7, 1},
		{"an empty source", 0, 10, 5, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := Paginate(tt.limit, pages(tt.n, tt.size, &calls))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.wantLen || calls != tt.wantCalls {
				t.Errorf("got %d items in %d calls, want %d in %d", len(got), calls, tt.wantLen, tt.wantCalls)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("item %d is %d", i, v)
				}
			}
		})
	}
}

func TestPaginateStopsOnARepeatedCursor(t *testing.T) {
	calls := 0
	got, err := Paginate(0, func(cursor string) ([]string, string, error) {
		calls++
		return []string{cursor}, "same", nil
	})
	if err != nil || calls != 2 || !reflect.DeepEqual(got, []string{"", "same"}) {
		t.Errorf("got %v, %v after %d calls", got, err, calls)
	}
}

func TestPaginateReturnsItemsSoFarWithTheError(t *testing.T) {
	boom := errors.New("boom")
	got, err := Paginate(0, func(cursor string) ([]int, string, error) {
		if cursor == "" {
			return []int{1, 2}, "next", nil
		}
		return nil, "", boom
	})
	if !errors.Is(err, boom) || !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("got %v, %v", got, err)
	}
}
