package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enrollflow/enrollflow/store"
)

// Store wraps st so that every operation is counted by outcome and timed.
func (m *Metrics) Store(st store.Store) store.Store {
	s := &instrumentedStore{next: st, m: m, ops: map[string]*storeOp{}}
	for _, name := range storeOperations {
		op := &storeOp{duration: m.storeDuration.WithLabelValues(name), outcomes: map[string]prometheus.Counter{}}
		for _, o := range storeOutcomes {
			op.outcomes[o] = m.storeOps.WithLabelValues(name, o)
		}
		s.ops[name] = op
	}
	return s
}

// The label values, resolved once so that an operation costs two atomic
// adds and no map of label hashes.
var (
	storeOperations = []string{"create_execution", "get_execution", "update_execution", "commit",
		"list_devices", "get_device", "update_device", "delete_device", "count_devices",
		"list_documents", "get_document", "put_document", "delete_document", "ping",
		"attempt", "read_regulation", "settle", "spend", "refund",
		"pairing_key_valid", "put_index", "get_index", "delete_index"}
	storeOutcomes = []string{"ok", "not_found", "conflict", "exists", "device_limit", "unavailable", "canceled", "error"}
)

type storeOp struct {
	duration prometheus.Observer
	outcomes map[string]prometheus.Counter
}

type instrumentedStore struct {
	next store.Store
	m    *Metrics
	ops  map[string]*storeOp
}

var _ store.Store = (*instrumentedStore)(nil)

// observe records one operation that began at start.
func (s *instrumentedStore) observe(name string, start time.Time, err error) {
	op := s.ops[name]
	op.duration.Observe(time.Since(start).Seconds())
	op.outcomes[storeOutcome(err)].Inc()
}

func storeOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, store.ErrConflict):
		return "conflict"
	case errors.Is(err, store.ErrExists):
		return "exists"
	case errors.Is(err, store.ErrDeviceLimit):
		return "device_limit"
	case errors.Is(err, context.Canceled):
		return "canceled" // the client went away: not the store's fault
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return "unavailable"
	}
	return "error"
}

func (s *instrumentedStore) CreateExecution(ctx context.Context, x store.Execution) (err error) {
	defer func(start time.Time) { s.observe("create_execution", start, err) }(time.Now())
	return s.next.CreateExecution(ctx, x)
}

func (s *instrumentedStore) GetExecution(ctx context.Context, envID, id string) (x store.Execution, err error) {
	defer func(start time.Time) { s.observe("get_execution", start, err) }(time.Now())
	return s.next.GetExecution(ctx, envID, id)
}

func (s *instrumentedStore) UpdateExecution(ctx context.Context, x store.Execution) (err error) {
	defer func(start time.Time) { s.observe("update_execution", start, err) }(time.Now())
	return s.next.UpdateExecution(ctx, x)
}

func (s *instrumentedStore) Commit(ctx context.Context, x store.Execution, writes ...store.Write) (err error) {
	defer func(start time.Time) { s.observe("commit", start, err) }(time.Now())
	return s.next.Commit(ctx, x, writes...)
}

func (s *instrumentedStore) ListDevices(ctx context.Context, envID, userID string) (devs []store.Device, err error) {
	defer func(start time.Time) { s.observe("list_devices", start, err) }(time.Now())
	return s.next.ListDevices(ctx, envID, userID)
}

func (s *instrumentedStore) GetDevice(ctx context.Context, envID, userID, deviceID string) (dev store.Device, err error) {
	defer func(start time.Time) { s.observe("get_device", start, err) }(time.Now())
	return s.next.GetDevice(ctx, envID, userID, deviceID)
}

func (s *instrumentedStore) UpdateDevice(ctx context.Context, dev store.Device) (err error) {
	defer func(start time.Time) { s.observe("update_device", start, err) }(time.Now())
	return s.next.UpdateDevice(ctx, dev)
}

func (s *instrumentedStore) DeleteDevice(ctx context.Context, envID, userID, deviceID string) (err error) {
	defer func(start time.Time) { s.observe("delete_device", start, err) }(time.Now())
	return s.next.DeleteDevice(ctx, envID, userID, deviceID)
}

func (s *instrumentedStore) CountDevices(ctx context.Context, envID, userID string) (n int, err error) {
	defer func(start time.Time) { s.observe("count_devices", start, err) }(time.Now())
	return s.next.CountDevices(ctx, envID, userID)
}

func (s *instrumentedStore) ListDocuments(ctx context.Context, envID string, kind store.Kind) (docs []store.Document, err error) {
	defer func(start time.Time) { s.observe("list_documents", start, err) }(time.Now())
	return s.next.ListDocuments(ctx, envID, kind)
}

func (s *instrumentedStore) GetDocument(ctx context.Context, envID string, kind store.Kind, id string) (doc store.Document, err error) {
	defer func(start time.Time) { s.observe("get_document", start, err) }(time.Now())
	return s.next.GetDocument(ctx, envID, kind, id)
}

func (s *instrumentedStore) PutDocument(ctx context.Context, doc store.Document, onlyIfAbsent bool) (created bool, err error) {
	defer func(start time.Time) { s.observe("put_document", start, err) }(time.Now())
	return s.next.PutDocument(ctx, doc, onlyIfAbsent)
}

func (s *instrumentedStore) DeleteDocument(ctx context.Context, envID string, kind store.Kind, id string) (err error) {
	defer func(start time.Time) { s.observe("delete_document", start, err) }(time.Now())
	return s.next.DeleteDocument(ctx, envID, kind, id)
}

func (s *instrumentedStore) Ping(ctx context.Context) (err error) {
	defer func(start time.Time) { s.observe("ping", start, err) }(time.Now())
	return s.next.Ping(ctx)
}

func (s *instrumentedStore) Attempt(ctx context.Context, a store.Attempt) (res store.AttemptResult, err error) {
	defer func(start time.Time) { s.observe("attempt", start, err) }(time.Now())
	return s.next.Attempt(ctx, a)
}

func (s *instrumentedStore) ReadRegulation(ctx context.Context, envID, userID string) (rec store.RegulationRecord, err error) {
	defer func(start time.Time) { s.observe("read_regulation", start, err) }(time.Now())
	return s.next.ReadRegulation(ctx, envID, userID)
}

func (s *instrumentedStore) Settle(ctx context.Context, envID, userID string, st store.Settlement) (err error) {
	defer func(start time.Time) { s.observe("settle", start, err) }(time.Now())
	return s.next.Settle(ctx, envID, userID, st)
}

func (s *instrumentedStore) Spend(ctx context.Context, budgets ...store.Budget) (spent store.Spent, err error) {
	defer func(start time.Time) { s.observe("spend", start, err) }(time.Now())
	return s.next.Spend(ctx, budgets...)
}

func (s *instrumentedStore) Refund(ctx context.Context, b store.Budget) (err error) {
	defer func(start time.Time) { s.observe("refund", start, err) }(time.Now())
	return s.next.Refund(ctx, b)
}

func (s *instrumentedStore) PairingKeyValid(ctx context.Context, envID, userID, hash string) (ok bool, err error) {
	defer func(start time.Time) { s.observe("pairing_key_valid", start, err) }(time.Now())
	return s.next.PairingKeyValid(ctx, envID, userID, hash)
}

func (s *instrumentedStore) PutIndex(ctx context.Context, envID string, name store.IndexName, key, value string, expiresAt time.Time) (created bool, err error) {
	defer func(start time.Time) { s.observe("put_index", start, err) }(time.Now())
	return s.next.PutIndex(ctx, envID, name, key, value, expiresAt)
}

func (s *instrumentedStore) GetIndex(ctx context.Context, envID string, name store.IndexName, key string) (v string, err error) {
	defer func(start time.Time) { s.observe("get_index", start, err) }(time.Now())
	return s.next.GetIndex(ctx, envID, name, key)
}

func (s *instrumentedStore) DeleteIndex(ctx context.Context, envID string, name store.IndexName, key, value string) (err error) {
	defer func(start time.Time) { s.observe("delete_index", start, err) }(time.Now())
	return s.next.DeleteIndex(ctx, envID, name, key, value)
}

// WatchExecution is not a round trip (the node's one subscription serves
// every waiter); the long polls are counted by the API.
func (s *instrumentedStore) WatchExecution(envID, id string) (<-chan struct{}, func()) {
	return s.next.WatchExecution(envID, id)
}

func (s *instrumentedStore) Close() error { return s.next.Close() }
