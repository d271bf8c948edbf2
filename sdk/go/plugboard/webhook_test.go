package plugboard_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/go/plugboard"
	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestVerifyWebhookStandardVector checks the signature of the Standard Webhooks
// specification's own test vector: it matches (the body is not a Plugboard event, which is
// the next check), and a changed byte does not.
func TestVerifyWebhookStandardVector(t *testing.T) {
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	at := time.Unix(1614265330, 0)
	_, err := plugboard.VerifyWebhookAt(h, []byte(`{"test": 2432232314}`), testSecret, at)
	if !errors.Is(err, plugboard.ErrWebhookBadBody) {
		t.Errorf("the spec's vector: %v, want a matching signature on a body that is not an event", err)
	}
	_, err = plugboard.VerifyWebhookAt(h, []byte(`{"test": 2432232315}`), testSecret, at)
	if !errors.Is(err, plugboard.ErrWebhookNoMatchingSignature) {
		t.Errorf("the vector with a changed body: %v", err)
	}
}

func TestVerifyWebhook(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"trig.items","event_type":"record.created","source_event_id":"rec_1","timestamp":"2026-12-03T10:00:00Z","subscription":"sub_1","data":{"name":"Ada"}}`)
	now := time.Unix(1_796_000_000, 0)
	signed := func() http.Header { return plugboardtest.SignWebhook(testSecret, "evt_1", now, body) }
	tests := []struct {
		name   string
		header func() http.Header
		body   []byte
		secret string
		at     time.Time
		want   error // nil: verified
		// wantHeader is the header the error names
		wantHeader string
	}{
		{name: "a signed push verifies", header: signed},
		{name: "header names in lower case, as a map literal has them", header: func() http.Header {
			h := http.Header{}
			for k, v := range signed() {
				h[strings.ToLower(k)] = v
			}
			return h
		}},
		{name: "one matching entry among several is enough", header: func() http.Header {
			h := signed()
			h.Set("webhook-signature", "v1,bm90IGl0 v1a,whatever "+h.Get("webhook-signature")+" v2,xyz")
			return h
		}},
		{name: "four minutes late is accepted", header: signed, at: now.Add(4 * time.Minute)},
		{name: "a tampered body is refused", header: signed,
			body: []byte(strings.Replace(string(body), "Ada", "Eve", 1)), want: plugboard.ErrWebhookNoMatchingSignature, wantHeader: "webhook-signature"},
		{name: "another secret is refused", header: signed, secret: "whsec_" + "c2VjcmV0LW9mLWFub3RoZXItc3Vic2NyaXB0aW9u",
			want: plugboard.ErrWebhookNoMatchingSignature},
		{name: "a signature of another scheme only is refused", header: func() http.Header {
			h := signed()
			h.Set("webhook-signature", strings.Replace(h.Get("webhook-signature"), "v1,", "v1a,", 1))
			return h
		}, want: plugboard.ErrWebhookNoMatchingSignature},
		{name: "a timestamp six minutes old is refused", header: signed, at: now.Add(6 * time.Minute),
			want: plugboard.ErrWebhookStaleTimestamp, wantHeader: "webhook-timestamp"},
		{name: "a timestamp six minutes ahead is refused", header: signed, at: now.Add(-6 * time.Minute),
			want: plugboard.ErrWebhookStaleTimestamp},
		{name: "a timestamp that is not a number is refused", header: func() http.Header {
			h := signed()
			h.Set("webhook-timestamp", now.Format(time.RFC3339))
			return h
		}, want: plugboard.ErrWebhookBadTimestamp},
		{name: "a secret without whsec_ is refused", header: signed, secret: strings.TrimPrefix(testSecret, "whsec_"),
			want: plugboard.ErrWebhookBadSecret},
		{name: "a signed body that is not an event is refused", header: func() http.Header {
			return plugboardtest.SignWebhook(testSecret, "evt_1", now, []byte("[1]"))
		}, body: []byte("[1]"), want: plugboard.ErrWebhookBadBody},
	}
	for _, name := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		tests = append(tests, struct {
			name   string
			header func() http.Header
			body   []byte
			secret string
			at     time.Time
			want   error
			// wantHeader is the header the error names
			wantHeader string
		}{name: "missing " + name, header: func() http.Header { h := signed(); h.Del(name); return h },
			want: plugboard.ErrWebhookMissingHeader, wantHeader: name})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, secret, at := tt.body, tt.secret, tt.at
			if b == nil {
				b = body
			}
			if secret == "" {
				secret = testSecret
			}
			if at.IsZero() {
				at = now
			}
			ev, err := plugboard.VerifyWebhookAt(tt.header(), b, secret, at)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if ev.ID != "evt_1" || ev.Type != "trig.items" || ev.Subscription != "sub_1" || string(ev.Data) != `{"name":"Ada"}` {
					t.Errorf("event %+v", ev)
				}
				return
			}
			we, ok := errors.AsType[*plugboard.WebhookError](err)
			if !ok || !errors.Is(err, tt.want) {
				t.Fatalf("error %v (%T), want a *WebhookError for %v", err, err, tt.want)
			}
			if tt.wantHeader != "" && we.Header != tt.wantHeader {
				t.Errorf("Header = %q, want %q", we.Header, tt.wantHeader)
			}
			if strings.Contains(err.Error(), strings.TrimPrefix(secret, "whsec_")) {
				t.Errorf("the error shows the secret: %v", err)
			}
			if tt.want == plugboard.ErrWebhookMissingHeader && !strings.HasSuffix(err.Error(), "missing header "+tt.wantHeader) {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

// TestVerifyWebhookNow: VerifyWebhook uses the real clock.
func TestVerifyWebhookNow(t *testing.T) {
	body := []byte(`{"id":"evt_9","type":"trig.items","source_event_id":"9","timestamp":"2026-12-03T10:00:00Z","subscription":"sub_1","data":{}}`)
	if _, err := plugboard.VerifyWebhook(plugboardtest.SignWebhook(testSecret, "evt_9", time.Now(), body), body, testSecret); err != nil {
		t.Error(err)
	}
	old := plugboardtest.SignWebhook(testSecret, "evt_9", time.Now().Add(-time.Hour), body)
	if _, err := plugboard.VerifyWebhook(old, body, testSecret); !errors.Is(err, plugboard.ErrWebhookStaleTimestamp) {
		t.Errorf("an hour-old push: %v", err)
	}
}
