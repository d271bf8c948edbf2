package natsstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/plugboard/plugboard/registry/storage"
)

// Transactions (see doc.go "Consistency").
//
// A bucket is a JetStream KV bucket: one stream, one subject per key, history 1. Every write of
// this package is a transaction over one bucket: it reads the keys it depends on (recording
// each key's revision, the stream sequence of the key's last message, 0 when it never had
// one), then publishes all its puts and deletes as one JetStream atomic batch in which every
// key that was read carries Nats-Expected-Last-Subject-Sequence: its revision. The stream
// applies the whole batch or none of it, and refuses it when any of those keys changed since
// it was read, so a transaction is atomic (a crash mid-batch leaves nothing: an uncommitted
// batch is abandoned) and serializable for the keys it writes. Groups of keys that must change
// together are guarded by one key every writer of the group rewrites (a connector's g.<name>,
// a source's record): a transaction that reads a group writes its guard, so it conflicts with
// every concurrent writer of the group. A conflict runs the transaction again.
//
// Reads use JetStream direct get, which never observes a partially applied atomic batch.

// markerTTL is how long a delete marker stays: long enough for every watcher to see it, short
// enough that deleted events and queue entries do not accumulate markers.
const markerTTL = time.Hour

// maxAttempts bounds the retries of a transaction that keeps conflicting.
const maxAttempts = 200

// errConflict: a key the transaction read changed before it committed.
var errConflict = errors.New("conflicting concurrent write")

// errInjected is the failure crashMidBatch injects.
var errInjected = errors.New("injected crash before the batch commit")

// bucket is one KV bucket.
type bucket struct {
	name   string // KV bucket name
	stream string // KV_<name>
	pre    string // "$KV.<name>."
	kv     jetstream.KeyValue
	caches []*cache // in-memory copies of key ranges (cache.go)
	// replicated: the stream has more than one replica, whose followers may answer direct
	// gets with a value older than the leader's (get, leaderGet).
	replicated bool
}

// openBucket creates the KV bucket when it is missing (history 1, atomic batches and
// per-message TTL enabled on its stream) and returns it.
func (s *Store) openBucket(ctx context.Context, name string, replicas int, atomicBatch bool, maxAge time.Duration) (*bucket, error) {
	kv, err := s.js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, History: 1, Replicas: replicas, TTL: maxAge,
			Description: "Plugboard state (natsstore)"})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = s.js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsstore: opening KV bucket %s on %s (is JetStream enabled?): %w", name, s.urls, err)
	}
	b := &bucket{name: name, stream: "KV_" + name, pre: "$KV." + name + ".", kv: kv}
	st, err := s.js.Stream(ctx, b.stream)
	if err != nil {
		return nil, fmt.Errorf("natsstore: stream %s on %s: %w", b.stream, s.urls, err)
	}
	cfg := st.CachedInfo().Config
	b.replicated = cfg.Replicas > 1
	if (atomicBatch && !cfg.AllowAtomicPublish) || !cfg.AllowMsgTTL {
		cfg.AllowAtomicPublish = cfg.AllowAtomicPublish || atomicBatch
		cfg.AllowMsgTTL = true
		if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("natsstore: enabling atomic batches on %s (nats-server 2.12 or later is required): %w", b.stream, err)
		}
	}
	return b, nil
}

// entry is one key's last message: its value when it exists, and its revision either way.
type entry struct {
	key    string
	val    []byte
	rev    uint64 // 0: the key never had a message (or its delete marker expired)
	exists bool
}

// get reads one key with a direct get, which any replica of a replicated bucket may answer,
// so it may miss a write another node had acknowledged a moment ago. A fresh read
// ([storage.WithFresh]) of a replicated bucket asks the stream leader instead (leaderGet).
func (s *Store) get(ctx context.Context, b *bucket, key string) (entry, error) {
	if b.replicated && storage.IsFresh(ctx) {
		return s.leaderGet(ctx, b, key)
	}
	if err := s.reach(ctx); err != nil {
		return entry{}, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	msg, err := s.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+b.stream+"."+b.pre+key, nil)
	if err != nil {
		return entry{}, s.netErr("reading "+b.name+" "+key, err)
	}
	if st := msg.Header.Get("Status"); st != "" {
		if st == "404" {
			return entry{key: key}, nil
		}
		return entry{}, fmt.Errorf("natsstore: reading %s %s: status %s %s", b.name, key, st, msg.Header.Get("Description"))
	}
	rev, _ := strconv.ParseUint(msg.Header.Get("Nats-Sequence"), 10, 64)
	if op := msg.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return entry{key: key, rev: rev}, nil
	}
	return entry{key: key, val: msg.Data, rev: rev, exists: true}, nil
}

// leaderGet reads one key through the stream leader's message get API, which sees every
// write the leader acknowledged. Followers of a replicated bucket answer direct gets and may
// lag behind it (nats-server issue 6557; the leader's API is the documented way to read
// one's writes), so fresh reads and transactions on replicated buckets read here.
func (s *Store) leaderGet(ctx context.Context, b *bucket, key string) (entry, error) {
	if err := s.reach(ctx); err != nil {
		return entry{}, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	req, _ := json.Marshal(map[string]string{"last_by_subj": b.pre + key})
	msg, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+b.stream, req)
	if err != nil {
		return entry{}, s.netErr("reading "+b.name+" "+key, err)
	}
	var resp struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return entry{}, fmt.Errorf("natsstore: reading %s %s: the stream leader's answer is not JSON: %w", b.name, key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return entry{key: key}, nil
	case resp.Error != nil:
		return entry{}, fmt.Errorf("natsstore: reading %s %s: %s (JetStream error %d)", b.name, key, resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return entry{}, fmt.Errorf("natsstore: reading %s %s: the stream leader answered no message", b.name, key)
	}
	m := resp.Message
	if len(m.Hdrs) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Hdrs)
		if err != nil {
			return entry{}, fmt.Errorf("natsstore: reading %s %s: headers: %w", b.name, key, err)
		}
		if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			return entry{key: key, rev: m.Seq}, nil
		}
	}
	return entry{key: key, val: m.Data, rev: m.Seq, exists: true}, nil
}

// scan reads every existing key matching filter (a KV key pattern such as "q.sub1.>"), in
// stream order. Written after a guard key was read, it sees every batch that guard reflects.
func (s *Store) scan(ctx context.Context, b *bucket, filter string) ([]entry, error) {
	if err := s.reach(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	w, err := b.kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, s.netErr("listing "+b.name+" "+filter, err)
	}
	defer w.Stop()
	var out []entry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, s.netErr("listing "+b.name+" "+filter, errors.New("watcher stopped"))
			}
			if e == nil {
				return out, nil
			}
			if e.Operation() == jetstream.KeyValuePut {
				out = append(out, entry{key: e.Key(), val: e.Value(), rev: e.Revision(), exists: true})
			}
		case <-ctx.Done():
			return nil, s.netErr("listing "+b.name+" "+filter, ctx.Err())
		}
	}
}

// write is one put or delete of a transaction.
type write struct {
	key string
	val []byte
	del bool
	rev uint64 // the revision it got (after commit)
}

// txn collects the reads and writes of one transaction over one bucket.
type txn struct {
	s      *Store
	b      *bucket
	reads  map[string]entry
	writes []write
	widx   map[string]int
}

// get returns the key as this transaction sees it: its own write, else what it read before,
// else a fresh read (recorded, so a write of the key checks it is unchanged).
func (t *txn) get(ctx context.Context, key string) (entry, error) {
	if i, ok := t.widx[key]; ok {
		w := t.writes[i]
		return entry{key: key, val: w.val, exists: !w.del}, nil
	}
	if e, ok := t.reads[key]; ok {
		return e, nil
	}
	// A transaction reads what it will check at commit: a stale replica's answer would only
	// make the commit conflict, again and again while that replica lags.
	e, err := t.s.get(storage.WithFresh(ctx), t.b, key)
	if err != nil {
		return entry{}, err
	}
	t.reads[key] = e
	return e, nil
}

// scan lists the keys matching filter, recording their revisions like get; keys this
// transaction wrote are seen as written.
func (t *txn) scan(ctx context.Context, filter string) ([]entry, error) {
	es, err := t.s.scan(ctx, t.b, filter)
	if err != nil {
		return nil, err
	}
	var out []entry
	for _, e := range es {
		if _, ok := t.reads[e.key]; !ok {
			t.reads[e.key] = e
		}
		if i, ok := t.widx[e.key]; ok {
			if t.writes[i].del {
				continue
			}
			e.val = t.writes[i].val
		}
		out = append(out, e)
	}
	return out, nil
}

// getJSON decodes the key into v; false when it does not exist.
func (t *txn) getJSON(ctx context.Context, key string, v any) (bool, error) {
	e, err := t.get(ctx, key)
	if err != nil || !e.exists {
		return false, err
	}
	if err := json.Unmarshal(e.val, v); err != nil {
		return false, t.s.corruptErr(t.b.name+" "+key, err)
	}
	return true, nil
}

func (t *txn) put(key string, val []byte) { t.add(write{key: key, val: val}) }
func (t *txn) del(key string)             { t.add(write{key: key, del: true}) }

func (t *txn) putJSON(key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	t.put(key, data)
	return nil
}

func (t *txn) add(w write) {
	if i, ok := t.widx[w.key]; ok {
		t.writes[i] = w
		return
	}
	t.widx[w.key] = len(t.writes)
	t.writes = append(t.writes, w)
}

// update runs fn in a transaction over b and commits it, running fn again (with fresh reads)
// when the commit conflicts. An error from fn aborts it and is returned as is. After the
// commit, the store's in-memory copies reflect the writes.
func (s *Store) update(ctx context.Context, b *bucket, fn func(t *txn) error) (*txn, error) {
	for attempt := 1; ; attempt++ {
		if err := s.reach(ctx); err != nil {
			return nil, err
		}
		t := &txn{s: s, b: b, reads: map[string]entry{}, widx: map[string]int{}}
		if err := fn(t); err != nil {
			return nil, err
		}
		err := s.commit(ctx, t)
		if errors.Is(err, errConflict) && attempt < maxAttempts {
			time.Sleep(time.Duration(rand.IntN(1+min(attempt, 20))) * time.Millisecond) // back off from a hot key
			continue
		}
		if errors.Is(err, errConflict) {
			return nil, fmt.Errorf("natsstore: %s: gave up after %d conflicting attempts; retry: %w", b.name, attempt, err)
		}
		if err != nil {
			return nil, err
		}
		s.applyOwn(t)
		return t, nil
	}
}

// pubAck is JetStream's answer to a publish or a batch commit.
type pubAck struct {
	Seq   uint64 `json:"seq"`
	Count int    `json:"count"`
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// JetStream error codes that mean "someone else wrote first": wrong last sequence (10071,
// 10164) and too many inflight batches (10210).
func isConflictCode(c int) bool { return c == 10071 || c == 10164 || c == 10210 }

// maxBatch is the default limit of messages in one atomic batch (nats-server max_batch_size).
const maxBatch = 1000

// commit publishes the transaction's writes as one atomic batch (a single write as one
// publish) and records the revision of each.
func (s *Store) commit(ctx context.Context, t *txn) error {
	if len(t.writes) == 0 {
		return nil
	}
	msgs := make([]*nats.Msg, len(t.writes))
	for i, w := range t.writes {
		m := nats.NewMsg(t.b.pre + w.key)
		m.Data = w.val
		if w.del {
			m.Header.Set("KV-Operation", "DEL")
			m.Header.Set("Nats-TTL", markerTTL.String())
		}
		if e, ok := t.reads[w.key]; ok {
			m.Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(e.rev, 10))
		}
		msgs[i] = m
	}
	last, err := s.publishBatch(ctx, t.b.name, msgs)
	if err != nil {
		return err
	}
	for i := range t.writes {
		t.writes[i].rev = last - uint64(len(msgs)-1-i)
	}
	return nil
}

// publishBatch publishes msgs into one stream as one atomic batch (one message as a plain
// publish) and returns the stream sequence of the last; the others precede it in order.
// errConflict reports a failed Nats-Expected-Last-Subject-Sequence check.
func (s *Store) publishBatch(ctx context.Context, what string, msgs []*nats.Msg) (uint64, error) {
	n := len(msgs)
	if n > maxBatch {
		return 0, fmt.Errorf("natsstore: one commit would write %d records to %s, over JetStream's atomic batch limit of %d: commit fewer at a time", n, what, maxBatch)
	}
	if err := s.reach(ctx); err != nil {
		return 0, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	id := nuid.Next()
	crash := s.crashMidBatch.Load()
	var reply *nats.Msg
	for i, m := range msgs {
		if n > 1 {
			m.Header.Set("Nats-Batch-Id", id)
			m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		}
		if i < n-1 {
			if crash != nil && i == n/2 && (*crash)(what) {
				return 0, errInjected
			}
			if err := s.nc.PublishMsg(m); err != nil {
				return 0, s.netErr("writing "+what, err)
			}
			continue
		}
		if n > 1 {
			m.Header.Set("Nats-Batch-Commit", "1")
		}
		var err error
		if reply, err = s.nc.RequestMsgWithContext(ctx, m); err != nil {
			return 0, s.netErr("writing "+what, err)
		}
	}
	var ack pubAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return 0, fmt.Errorf("natsstore: writing %s: unreadable acknowledgment %q: %w", what, reply.Data, err)
	}
	if ack.Error != nil {
		if isConflictCode(ack.Error.ErrCode) {
			return 0, errConflict
		}
		return 0, fmt.Errorf("natsstore: writing %s: JetStream refused the write: %s (code %d)", what, ack.Error.Description, ack.Error.ErrCode)
	}
	return ack.Seq, nil
}

// Key encoding: KV keys allow [-/_=.A-Za-z0-9] and use '.' between tokens, so every name
// taken from a caller is one token: [A-Za-z0-9_-] kept, any other byte as '=' and two hex
// digits, and the empty string as "=".
func enc(s string) string {
	if s == "" {
		return "="
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteString(hex.EncodeToString([]byte{c}))
	}
	return b.String()
}

// dec reverses enc.
func dec(s string) string {
	if s == "=" {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '=' && i+2 < len(s) {
			if v, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				b.WriteByte(v[0])
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// seqTok is a sequence number as a token that sorts like the numbers.
func seqTok(seq uint64) string { return fmt.Sprintf("%020d", seq) }
