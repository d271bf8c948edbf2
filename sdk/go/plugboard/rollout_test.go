package plugboard

import (
	"testing"
	"time"
)

// TestParseUploadTiming reads the steps of an upload from its Server-Timing header; what it does
// not know or cannot read is zero.
func TestParseUploadTiming(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	tests := []struct {
		name, header string
		want         UploadTiming
	}{
		{"the server's three steps", "check;dur=612.3, store;dur=4.1, activate;dur=35.0", UploadTiming{ms(612.3), ms(4.1), ms(35)}},
		{"no header", "", UploadTiming{}},
		{"other metrics and parameters", `cache;desc="hit", check;desc="checks";dur=7`, UploadTiming{Check: ms(7)}},
		{"unreadable durations", "check;dur=x, store;dur=-1", UploadTiming{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseUploadTiming(tt.header); got != tt.want {
				t.Errorf("parseUploadTiming(%q) = %+v, want %+v", tt.header, got, tt.want)
			}
		})
	}
}
