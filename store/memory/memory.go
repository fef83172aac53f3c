// Package memory is the embedded, zero-setup store: everything in this
// process's memory, lost on exit. It keeps the same contract as the Redis
// backend (store/storetest proves it), so it serves both for trying the
// service and for fast tests.
package memory

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/enrollflow/enrollflow/store"
)

// Store is safe for concurrent use. One mutex is enough: every operation is
// a few map look-ups, far cheaper than the HTTP work around it.
type Store struct {
	now func() time.Time

	mu          sync.Mutex
	executions  map[string]store.Execution           // env + "/" + id
	devices     map[string]map[string]store.Device   // env + "/" + user -> id -> device
	docs        map[docKey]map[string]store.Document // id -> document
	regulations map[string]*regulation               // env + "/" + user
	budgets     map[string]*budget                   // budget key
	pairingKeys map[string]map[string]time.Time      // env + "/" + user -> hash -> expiresAt
	indexes     map[string]indexEntry                // env + "/" + name + "/" + key
	sweepAt     time.Time

	hub *store.Hub // waiters of executions, woken by this store's writes
}

type indexEntry struct {
	value     string
	expiresAt time.Time
}

// New returns an empty store. now is the clock used for expiry (nil: time.Now).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:         now,
		executions:  map[string]store.Execution{},
		devices:     map[string]map[string]store.Device{},
		docs:        map[docKey]map[string]store.Document{},
		regulations: map[string]*regulation{},
		budgets:     map[string]*budget{},
		pairingKeys: map[string]map[string]time.Time{},
		indexes:     map[string]indexEntry{},
		hub:         store.NewHub(),
	}
}

func execKey(envID, id string) string { return envID + "/" + id }

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func (s *Store) CreateExecution(_ context.Context, exec store.Execution) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	k := execKey(exec.EnvID, exec.ID)
	if old, ok := s.executions[k]; ok && s.now().Before(old.ExpiresAt) {
		return store.ErrExists
	}
	exec.Data = clone(exec.Data)
	s.executions[k] = exec
	return nil
}

func (s *Store) GetExecution(_ context.Context, envID, id string) (store.Execution, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exec, ok := s.liveLocked(envID, id)
	if !ok {
		return store.Execution{}, store.ErrNotFound
	}
	exec.Data = clone(exec.Data)
	return exec, nil
}

func (s *Store) UpdateExecution(_ context.Context, exec store.Execution) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkVersionLocked(exec); err != nil {
		return err
	}
	exec.Data = clone(exec.Data)
	s.executions[execKey(exec.EnvID, exec.ID)] = exec
	s.hub.Notify(execKey(exec.EnvID, exec.ID))
	return nil
}

func (s *Store) Commit(_ context.Context, exec store.Execution, writes ...store.Write) error {
	if err := store.CheckWrites(exec, writes); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkVersionLocked(exec); err != nil {
		return err
	}
	// Check every write first, then apply them all: nothing is half done.
	// Writes apply in order, so later ones see the counts earlier ones made.
	counts := map[string]int{}
	for _, w := range writes {
		uk := execKey(w.Device.EnvID, w.Device.UserID)
		if _, seen := counts[uk]; !seen {
			counts[uk] = len(s.devices[uk])
		}
		cur, exists := s.devices[uk][w.Device.ID]
		switch w.Op {
		case store.ClaimPairingKey:
			if exp, ok := s.pairingKeys[uk][w.PairingKey.Hash]; !ok || !s.now().Before(exp) {
				return store.ErrConflict
			}
			continue
		case store.CreateDevice:
			if exists {
				return store.ErrExists
			}
			if w.MaxDevices > 0 && counts[uk] >= w.MaxDevices {
				return store.ErrDeviceLimit
			}
			counts[uk]++
		case store.UpdateDevice:
			if !exists {
				return store.ErrNotFound
			}
			if cur.Version != w.Device.Version-1 {
				return store.ErrConflict
			}
		case store.DeleteDevice:
			if exists {
				counts[uk]--
			}
		}
	}
	for _, w := range writes {
		uk := execKey(w.Device.EnvID, w.Device.UserID)
		switch w.Op {
		case store.DeleteDevice:
			delete(s.devices[uk], w.Device.ID)
			continue
		case store.Settle:
			s.settleLocked(w.Device.EnvID, w.Device.UserID, *w.Settle)
			continue
		case store.AddPairingKey:
			s.addPairingKeyLocked(uk, *w.PairingKey)
			continue
		case store.ClaimPairingKey, store.DropPairingKey:
			delete(s.pairingKeys[uk], w.PairingKey.Hash)
			continue
		}
		if s.devices[uk] == nil {
			s.devices[uk] = map[string]store.Device{}
		}
		d := w.Device
		d.Data = clone(d.Data)
		s.devices[uk][d.ID] = d
	}
	exec.Data = clone(exec.Data)
	s.executions[execKey(exec.EnvID, exec.ID)] = exec
	s.hub.Notify(execKey(exec.EnvID, exec.ID))
	return nil
}

// addPairingKeyLocked adds a valid key, forgets expired ones and voids
// those that expire first beyond the limit (never the new one), as the
// Redis script does.
func (s *Store) addPairingKeyLocked(uk string, k store.PairingKey) {
	keys := s.pairingKeys[uk]
	if keys == nil {
		keys = map[string]time.Time{}
		s.pairingKeys[uk] = keys
	}
	now := s.now()
	for h, exp := range keys {
		if !now.Before(exp) {
			delete(keys, h)
		}
	}
	keys[k.Hash] = k.ExpiresAt
	for k.Max > 0 && len(keys) > k.Max {
		first, firstExp := "", time.Time{}
		for h, exp := range keys {
			if h == k.Hash { // never the key being added
				continue
			}
			if first == "" || exp.Before(firstExp) || (exp.Equal(firstExp) && h < first) {
				first, firstExp = h, exp
			}
		}
		delete(keys, first)
	}
}

func (s *Store) PairingKeyValid(_ context.Context, envID, userID, hash string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.pairingKeys[execKey(envID, userID)][hash]
	return ok && s.now().Before(exp), nil
}

func indexKey(envID string, name store.IndexName, key string) string {
	return envID + "/" + string(name) + "/" + key
}

func (s *Store) PutIndex(_ context.Context, envID string, name store.IndexName, key, value string, expiresAt time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := indexKey(envID, name, key)
	if e, ok := s.indexes[k]; ok && s.now().Before(e.expiresAt) {
		return false, nil
	}
	s.indexes[k] = indexEntry{value: value, expiresAt: expiresAt}
	return true, nil
}

func (s *Store) GetIndex(_ context.Context, envID string, name store.IndexName, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.indexes[indexKey(envID, name, key)]
	if !ok || !s.now().Before(e.expiresAt) {
		return "", store.ErrNotFound
	}
	return e.value, nil
}

func (s *Store) DeleteIndex(_ context.Context, envID string, name store.IndexName, key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := indexKey(envID, name, key)
	if e, ok := s.indexes[k]; ok && e.value == value {
		delete(s.indexes, k)
	}
	return nil
}

// WatchExecution: this store's own writes wake the waiters (one process).
func (s *Store) WatchExecution(envID, id string) (<-chan struct{}, func()) {
	return s.hub.Watch(execKey(envID, id))
}

func (s *Store) checkVersionLocked(exec store.Execution) error {
	cur, ok := s.liveLocked(exec.EnvID, exec.ID)
	if !ok {
		return store.ErrNotFound
	}
	if cur.Version != exec.Version-1 {
		return store.ErrConflict
	}
	return nil
}

func (s *Store) liveLocked(envID, id string) (store.Execution, bool) {
	exec, ok := s.executions[execKey(envID, id)]
	if !ok || !s.now().Before(exec.ExpiresAt) {
		return store.Execution{}, false
	}
	return exec, true
}

// sweepLocked drops expired executions at most once a minute, so that a
// long-running demo server does not grow without bound.
func (s *Store) sweepLocked() {
	now := s.now()
	if now.Before(s.sweepAt) {
		return
	}
	s.sweepAt = now.Add(time.Minute)
	for k, exec := range s.executions {
		if !now.Before(exec.ExpiresAt) {
			delete(s.executions, k)
		}
	}
	for k, r := range s.regulations {
		if !now.Before(r.forgetAt) {
			delete(s.regulations, k)
		}
	}
	for k, b := range s.budgets {
		if !b.tat.After(now) {
			delete(s.budgets, k) // full again: the same as absent
		}
	}
	for k, e := range s.indexes {
		if !now.Before(e.expiresAt) {
			delete(s.indexes, k)
		}
	}
	for uk, keys := range s.pairingKeys {
		for h, exp := range keys {
			if !now.Before(exp) {
				delete(keys, h)
			}
		}
		if len(keys) == 0 {
			delete(s.pairingKeys, uk)
		}
	}
}

func (s *Store) ListDevices(_ context.Context, envID, userID string) ([]store.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Device, 0, len(s.devices[execKey(envID, userID)]))
	for _, d := range s.devices[execKey(envID, userID)] {
		d.Data = clone(d.Data)
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *Store) GetDevice(_ context.Context, envID, userID, deviceID string) (store.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[execKey(envID, userID)][deviceID]
	if !ok {
		return store.Device{}, store.ErrNotFound
	}
	d.Data = clone(d.Data)
	return d, nil
}

func (s *Store) UpdateDevice(_ context.Context, dev store.Device) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	userDevices := s.devices[execKey(dev.EnvID, dev.UserID)]
	cur, ok := userDevices[dev.ID]
	if !ok {
		return store.ErrNotFound
	}
	if cur.Version != dev.Version-1 {
		return store.ErrConflict
	}
	dev.Data = clone(dev.Data)
	userDevices[dev.ID] = dev
	return nil
}

func (s *Store) DeleteDevice(_ context.Context, envID, userID, deviceID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	userDevices := s.devices[execKey(envID, userID)]
	if _, ok := userDevices[deviceID]; !ok {
		return store.ErrNotFound
	}
	delete(userDevices, deviceID)
	return nil
}

func (s *Store) CountDevices(_ context.Context, envID, userID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.devices[execKey(envID, userID)]), nil
}

// docKey names one environment's documents of one kind.
type docKey struct {
	env  string
	kind store.Kind
}

func (s *Store) ListDocuments(_ context.Context, envID string, kind store.Kind) ([]store.Document, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	docs := s.docs[docKey{envID, kind}]
	out := make([]store.Document, 0, len(docs))
	for _, d := range docs {
		d.Data = clone(d.Data)
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *Store) GetDocument(_ context.Context, envID string, kind store.Kind, id string) (store.Document, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[docKey{envID, kind}][id]
	if !ok {
		return store.Document{}, store.ErrNotFound
	}
	d.Data = clone(d.Data)
	return d, nil
}

func (s *Store) PutDocument(_ context.Context, doc store.Document, onlyIfAbsent bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := docKey{doc.EnvID, doc.Kind}
	docs := s.docs[k]
	if docs == nil {
		docs = map[string]store.Document{}
		s.docs[k] = docs
	}
	_, exists := docs[doc.ID]
	if exists && onlyIfAbsent {
		return false, nil
	}
	doc.Data = clone(doc.Data)
	docs[doc.ID] = doc
	return !exists, nil
}

func (s *Store) DeleteDocument(_ context.Context, envID string, kind store.Kind, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := docKey{envID, kind}
	if _, ok := s.docs[k][id]; !ok {
		return store.ErrNotFound
	}
	delete(s.docs[k], id)
	return nil
}

func (s *Store) Ping(context.Context) error { return nil }
func (s *Store) Close() error               { return nil }

var _ store.Store = (*Store)(nil)
