package pdk

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// Credentials uses the connection's secrets through the plugboard_credential import without
// the guest seeing them. Get it from [Context.Credential].
//
// Field names are api_key; username and password (basic); access_token (oauth2); and the keys
// of the connection's extra secrets.
type Credentials struct{ ctx *Context }

// HMACSHA256 returns HMAC-SHA256 of data keyed with the secret field, for example to verify a
// webhook signature with a Slack signing secret. Refusals are *abi.Error values with host codes.
func (c *Credentials) HMACSHA256(field string, data []byte) ([]byte, error) {
	var reply abi.CredentialResponse
	req := abi.CredentialRequest{Op: abi.CredentialHMACSHA256, Field: field, DataBase64: base64.StdEncoding.EncodeToString(data)}
	if err := c.ctx.call(abi.ImportCredential, req, &reply); err != nil {
		return nil, err
	}
	if reply.Error != nil {
		return nil, reply.Error
	}
	mac, err := base64.StdEncoding.DecodeString(reply.MACBase64)
	if err != nil {
		return nil, errInternalf("plugboard_credential: malformed mac_base64 from the host: %v", err)
	}
	return mac, nil
}

// Reveal returns the secret field in clear. The host answers denied unless the manifest lists
// the field in capabilities.reveal and an operator approved it for the connector; prefer
// injection (the manifest's auth) or [Credentials.HMACSHA256].
func (c *Credentials) Reveal(field string) (string, error) {
	var reply abi.CredentialResponse
	if err := c.ctx.call(abi.ImportCredential, abi.CredentialRequest{Op: abi.CredentialReveal, Field: field}, &reply); err != nil {
		return "", err
	}
	if reply.Error != nil {
		return "", reply.Error
	}
	return reply.Value, nil
}

// Timers sets durable timers and sleeps through the plugboard_timer import. Get it from
// [Context.Timer]. Timers fire the handler registered with [OnTimer].
type Timers struct{ ctx *Context }

// Set schedules a timer named name that fires after delay (at least one second) with payload
// encoded as JSON (nil for none), and returns its id. Timers survive restarts and are scoped to
// the connector and connection; at most 100 may be pending per scope.
func (t *Timers) Set(name string, delay time.Duration, payload any) (string, error) {
	req := abi.TimerRequest{Op: abi.TimerSet, Name: name, DelayMS: delay.Milliseconds()}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return "", errInternalf("encoding the timer payload: %v", err)
		}
		req.Payload = b
	}
	var reply abi.TimerResponse
	if err := t.ctx.call(abi.ImportTimer, req, &reply); err != nil {
		return "", err
	}
	if reply.Error != nil {
		return "", reply.Error
	}
	return reply.ID, nil
}

// Cancel cancels the pending timer id.
func (t *Timers) Cancel(id string) error {
	var reply abi.TimerResponse
	if err := t.ctx.call(abi.ImportTimer, abi.TimerRequest{Op: abi.TimerCancel, ID: id}, &reply); err != nil {
		return err
	}
	if reply.Error != nil {
		return reply.Error
	}
	return nil
}

// Sleep pauses the call for d, for example to honour a short Retry-After. The host answers
// the deadline error when d would pass the call's deadline, so prefer it to time.Sleep.
func (t *Timers) Sleep(d time.Duration) error {
	var reply abi.TimerResponse
	if err := t.ctx.call(abi.ImportTimer, abi.TimerRequest{Op: abi.TimerSleep, MS: d.Milliseconds()}, &reply); err != nil {
		return err
	}
	if reply.Error != nil {
		return reply.Error
	}
	return nil
}

// KVStore is small durable state through the plugboard_kv import, scoped to the connector and
// the connection; it survives restarts and version swaps. Get it from [Context.KV]. Keys are at
// most 256 bytes, values 64 KiB of JSON, and a scope holds at most 1 MiB (too_large).
type KVStore struct{ ctx *Context }

// Get reads key into v (skipped when v is nil). found is false when the key is absent or expired.
func (k *KVStore) Get(key string, v any) (found bool, err error) {
	var reply abi.KVResponse
	if err := k.ctx.call(abi.ImportKV, abi.KVRequest{Op: abi.KVGet, Key: key}, &reply); err != nil {
		return false, err
	}
	if reply.Error != nil {
		return false, reply.Error
	}
	if reply.Found == nil || !*reply.Found {
		return false, nil
	}
	if v != nil {
		if err := json.Unmarshal(reply.Value, v); err != nil {
			return true, errInternalf("kv: value of %q does not decode: %v", key, err)
		}
	}
	return true, nil
}

// Set stores v encoded as JSON under key. A positive ttl makes the key expire (rounded up to
// whole seconds); zero keeps it until deleted.
func (k *KVStore) Set(key string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return errInternalf("kv: encoding the value of %q: %v", key, err)
	}
	req := abi.KVRequest{Op: abi.KVSet, Key: key, Value: b}
	if ttl > 0 {
		req.TTLS = int64((ttl + time.Second - 1) / time.Second)
	}
	var reply abi.KVResponse
	if err := k.ctx.call(abi.ImportKV, req, &reply); err != nil {
		return err
	}
	if reply.Error != nil {
		return reply.Error
	}
	return nil
}

// Delete removes key; deleting an absent key is not an error.
func (k *KVStore) Delete(key string) error {
	var reply abi.KVResponse
	if err := k.ctx.call(abi.ImportKV, abi.KVRequest{Op: abi.KVDelete, Key: key}, &reply); err != nil {
		return err
	}
	if reply.Error != nil {
		return reply.Error
	}
	return nil
}
