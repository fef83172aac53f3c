package memory

import (
	"context"
	"time"

	"github.com/enrollflow/enrollflow/store"
)

// regulation is one user's record. It has the Redis backend's semantics
// (store/storetest pins them): see store.Regulation.
type regulation struct {
	attempts    int
	lockedUntil time.Time
	subjects    map[string]*store.SubjectRecord
	forgetAt    time.Time
}

// regulationLocked returns the user's live record, dropping a forgotten one.
func (s *Store) regulationLocked(envID, userID string) *regulation {
	k := execKey(envID, userID)
	r := s.regulations[k]
	if r != nil && !s.now().Before(r.forgetAt) {
		delete(s.regulations, k)
		r = nil
	}
	return r
}

func (s *Store) Attempt(_ context.Context, a store.Attempt) (store.AttemptResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.regulationLocked(a.EnvID, a.UserID)
	if r == nil {
		r = &regulation{subjects: map[string]*store.SubjectRecord{}}
		s.regulations[execKey(a.EnvID, a.UserID)] = r
	}
	subj := &store.SubjectRecord{}
	if a.Subject != "" {
		if cur, ok := r.subjects[a.Subject]; ok {
			subj = cur
		}
	}
	result := func(refusal store.Refusal) store.AttemptResult {
		return store.AttemptResult{Refusal: refusal, UserAttempts: r.attempts, UserLockedUntil: r.lockedUntil,
			SubjectAttempts: subj.Attempts, SubjectLockedUntil: subj.LockedUntil}
	}
	if now.Before(r.lockedUntil) {
		return result(store.UserLocked), nil
	}
	if !r.lockedUntil.IsZero() { // a lockout served: count afresh
		r.attempts, r.lockedUntil = 0, time.Time{}
	}
	// Every attempt past a user's lockout counts towards it, even one its
	// subject then refuses: it is a guess at the user all the same.
	r.attempts++
	if a.UserLimit > 0 && r.attempts >= a.UserLimit {
		r.lockedUntil = now.Add(a.UserLockout)
	}
	r.forgetAt = now.Add(keepFor(a))
	if a.Subject != "" && a.SubjectLimit > 0 {
		if now.Before(subj.LockedUntil) {
			return result(store.SubjectLocked), nil
		}
		if subj.Attempts >= a.SubjectLimit {
			if a.SubjectStaysVoid {
				return result(store.SubjectVoid), nil
			}
			subj.Attempts, subj.LockedUntil = 0, time.Time{}
		}
	}
	if a.Subject != "" {
		subj.Attempts++
		subj.LockedUntil = time.Time{}
		if a.SubjectLimit > 0 && subj.Attempts >= a.SubjectLimit {
			subj.LockedUntil = now.Add(a.SubjectCoolDown)
		}
		r.subjects[a.Subject] = subj
	}
	r.forgetAt = now.Add(keepFor(a))
	return result(store.Admitted), nil
}

// keepFor is how long a record lives after an attempt: Forget, but never
// less than the lockout or cool-down the attempt may have started.
func keepFor(a store.Attempt) time.Duration {
	forget := a.Forget
	if forget <= 0 {
		forget = store.DefaultForget
	}
	return max(forget, a.UserLockout, a.SubjectCoolDown)
}

func (s *Store) ReadRegulation(_ context.Context, envID, userID string) (store.RegulationRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regulationLocked(envID, userID)
	out := store.RegulationRecord{Subjects: map[string]store.SubjectRecord{}}
	if r == nil {
		return out, nil
	}
	out.UserAttempts, out.UserLockedUntil = r.attempts, r.lockedUntil
	for id, sr := range r.subjects {
		out.Subjects[id] = *sr
	}
	return out, nil
}

func (s *Store) Settle(_ context.Context, envID, userID string, st store.Settlement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked(envID, userID, st)
	return nil
}

func (s *Store) settleLocked(envID, userID string, st store.Settlement) {
	r := s.regulationLocked(envID, userID)
	if r == nil {
		return
	}
	if st.User {
		r.attempts, r.lockedUntil = 0, time.Time{}
	}
	for _, id := range st.Subjects {
		delete(r.subjects, id)
	}
}

// budget is one GCRA bucket: tat is the theoretical arrival time of the
// next unit; the bucket is full when tat is not after now.
type budget struct{ tat time.Time }

func (s *Store) Spend(_ context.Context, budgets ...store.Budget) (store.Spent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for i, b := range budgets {
		emission := b.Period / time.Duration(b.Limit)
		tat := now
		if cur, ok := s.budgets[b.Key]; ok && cur.tat.After(now) {
			tat = cur.tat
		}
		// Allowed while the next unit's arrival, less the burst, is not
		// after now.
		if allowAt := tat.Add(emission).Add(-b.Period); allowAt.After(now) {
			return store.Spent{Refused: i, RetryAfter: allowAt.Sub(now)}, nil
		}
	}
	for _, b := range budgets {
		emission := b.Period / time.Duration(b.Limit)
		tat := now
		if cur, ok := s.budgets[b.Key]; ok && cur.tat.After(now) {
			tat = cur.tat
		}
		s.budgets[b.Key] = &budget{tat: tat.Add(emission)}
	}
	return store.Spent{OK: true}, nil
}

func (s *Store) Refund(_ context.Context, b store.Budget) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.budgets[b.Key]
	if !ok {
		return nil
	}
	cur.tat = cur.tat.Add(-b.Period / time.Duration(b.Limit))
	if !cur.tat.After(s.now()) {
		delete(s.budgets, b.Key) // full again
	}
	return nil
}
