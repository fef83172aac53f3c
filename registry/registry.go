// Package registry is the one API for a user's enrolled devices that every
// front door uses (the enrollment step's management routes today, the
// external-MFA webhook and the self-service API next): list, get, delete,
// update with compare-and-set re-run on conflict, and verify a code with
// the device's factor.
package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/regulation"
	"github.com/enrollflow/enrollflow/store"
)

// maxUpdateTries bounds how often an updater is re-run when other writers
// keep changing the device: past it the caller gets a 409.
const maxUpdateTries = 8

// Registry reads and changes devices. Safe for concurrent use.
type Registry struct {
	st        store.Devices
	reg       *regulation.Regulator
	verifiers map[mfa.DeviceType]factor.Verifier
	now       func() time.Time
}

// New returns a registry over st, whose verifications and passcodes go
// through reg, with the verifiers of the factors that verify enrolled
// devices.
func New(st store.Devices, reg *regulation.Regulator, now func() time.Time, verifiers ...factor.Verifier) *Registry {
	r := &Registry{st: st, reg: reg, verifiers: map[mfa.DeviceType]factor.Verifier{}, now: now}
	if r.now == nil {
		r.now = time.Now
	}
	for _, v := range verifiers {
		for _, t := range v.Types() {
			r.verifiers[t] = v
		}
	}
	return r
}

// Entry is one device with the version it was read at.
type Entry struct {
	mfa.Device
	Version int64
}

func entry(rec store.Device) (Entry, error) {
	d, err := mfa.ParseDevice(rec.Data)
	if err != nil {
		return Entry{}, engine.AsError(fmt.Errorf("device %s of a registry: %w", engine.LogID(rec.ID), err))
	}
	return Entry{Device: d, Version: rec.Version}, nil
}

func storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return engine.NotFound("device")
	case errors.Is(err, store.ErrConflict):
		return &engine.Error{Status: 409, Code: engine.CodeConcurrentUpdate,
			Message: "The device was changed by other requests all the while; nothing was changed. Retry."}
	}
	return engine.Unavailable(err)
}

// List returns the user's devices, sorted by id.
func (r *Registry) List(ctx context.Context, envID, userID string) ([]Entry, error) {
	recs, err := r.st.ListDevices(ctx, envID, userID)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	out := make([]Entry, 0, len(recs))
	for _, rec := range recs {
		e, err := entry(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Get returns one device (404 when the user has none of that id).
func (r *Registry) Get(ctx context.Context, envID, userID, deviceID string) (Entry, error) {
	rec, err := r.st.GetDevice(ctx, envID, userID, deviceID)
	if err != nil {
		return Entry{}, storeError(err)
	}
	return entry(rec)
}

// Delete removes a device, and then what its factor keeps of it outside
// the user's registry (a WebAuthn credential id's claim): a crash between
// the two leaves that behind, which is the safe side.
func (r *Registry) Delete(ctx context.Context, envID, userID, deviceID string) error {
	cur, err := r.Get(ctx, envID, userID, deviceID)
	if err != nil {
		return err
	}
	if err := r.st.DeleteDevice(ctx, envID, userID, deviceID); err != nil {
		return storeError(err)
	}
	if f, ok := r.verifiers[cur.Type].(factor.Forgetter); ok {
		if err := f.Forget(ctx, envID, userID, &cur.Device); err != nil {
			return engine.Unavailable(err)
		}
	}
	return nil
}

// Update applies fn to the device and saves it with compare-and-set. fn
// may be called several times: on a conflict it is re-run on the record
// that won, so it must only depend on the device it is given. An error
// from fn is returned as it is, and nothing is saved.
func (r *Registry) Update(ctx context.Context, envID, userID, deviceID string, fn func(*mfa.Device) error) (Entry, error) {
	cur, err := r.Get(ctx, envID, userID, deviceID)
	if err != nil {
		return Entry{}, err
	}
	return r.updateFrom(ctx, envID, userID, cur, fn)
}

// updateFrom is Update from a record the caller has just read: the first
// try needs no read of its own.
func (r *Registry) updateFrom(ctx context.Context, envID, userID string, cur Entry, fn func(*mfa.Device) error) (Entry, error) {
	for try := range maxUpdateTries {
		if try > 0 {
			var err error
			if cur, err = r.Get(ctx, envID, userID, cur.ID); err != nil {
				return Entry{}, err
			}
		}
		next := cur.Device
		if err := fn(&next); err != nil {
			return Entry{}, err
		}
		data, err := next.Marshal()
		if err != nil {
			return Entry{}, engine.AsError(err)
		}
		err = r.st.UpdateDevice(ctx, store.Device{EnvID: envID, UserID: userID, ID: cur.ID, Version: cur.Version + 1, Data: data})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return Entry{}, storeError(err)
		}
		return Entry{Device: next, Version: cur.Version + 1}, nil
	}
	return Entry{}, storeError(store.ErrConflict)
}

// Verified is the verdict of Verify.
type Verified struct {
	OK       bool
	Replayed bool
}

// errRefused stops an Update whose verification failed: nothing to save.
var errRefused = errors.New("registry: proof refused")

func (r *Registry) verifier(t mfa.DeviceType) (factor.Verifier, error) {
	v, ok := r.verifiers[t]
	if !ok {
		return nil, &engine.Error{Status: 409, Code: engine.CodeActionNotAllowed,
			Message: fmt.Sprintf("%s devices cannot be verified here.", t)}
	}
	return v, nil
}

// Verify checks proof against an enrolled device with its factor, under
// the user's regulation: counted before it is judged (a locked-out user
// gets the 429, a device whose attempts are spent the refusal), settled by
// a right one. A verification that advances the device (a TOTP code, a
// passcode used up) holds only if its write wins: two nodes verifying one
// code at once get one success.
func (r *Registry) Verify(ctx context.Context, env *engine.Environment, userID, deviceID, proof string) (Verified, error) {
	cur, err := r.Get(ctx, env.ID, userID, deviceID)
	if err != nil {
		return Verified{}, err
	}
	v, err := r.verifier(cur.Type)
	if err != nil {
		return Verified{}, err
	}
	policy := devicePolicy(env, &cur.Device)
	var limit factor.AttemptLimit
	if l, ok := v.(factor.AttemptLimiter); ok {
		limit = l.DeviceAttempts(&cur.Device, policy)
	}
	now := r.now()
	attempt, err := r.reg.Attempt(ctx, env, userID, limit, now)
	if err != nil {
		return Verified{}, err
	}
	if !attempt.Admitted() {
		return Verified{}, nil // the device's attempts are spent: refused unjudged
	}
	var verdict factor.Checked
	_, err = r.updateFrom(ctx, env.ID, userID, cur, func(d *mfa.Device) error {
		if l, ok := v.(factor.AttemptLimiter); ok && l.DeviceAttempts(d, policy).Subject != limit.Subject {
			// A new passcode was issued since the attempt was counted: the
			// guess was counted against the old one and is not judged
			// against the new.
			verdict = factor.Checked{}
			return errRefused
		}
		c, err := v.Verify(ctx, d, policy, proof, now)
		if err != nil {
			return engine.AsError(err)
		}
		verdict = c
		if !c.OK || !c.Changed {
			return errRefused // nothing to save
		}
		return nil
	})
	switch {
	case errors.Is(err, errRefused) && !verdict.OK:
		return Verified{Replayed: verdict.Replayed}, nil
	case err != nil && !errors.Is(err, errRefused):
		return Verified{}, err
	}
	subjects := []string{}
	if limit.Subject != "" {
		subjects = append(subjects, limit.Subject)
	}
	if err := r.reg.Settle(ctx, env, userID, subjects...); err != nil {
		return Verified{}, err
	}
	return Verified{OK: true}, nil
}

// Issue sends a new passcode to an enrolled device outside any execution
// (a sign-in), rendered and sent through the device's factor, after the
// send budgets allowed it. The passcode replaces any issued before.
func (r *Registry) Issue(ctx context.Context, env *engine.Environment, user factor.User, deviceID string, msg factor.Message) error {
	cur, err := r.Get(ctx, env.ID, user.ID, deviceID)
	if err != nil {
		return err
	}
	v, err := r.verifier(cur.Type)
	if err != nil {
		return err
	}
	issuer, ok := v.(factor.Issuer)
	if !ok {
		return &engine.Error{Status: 409, Code: engine.CodeActionNotAllowed,
			Message: fmt.Sprintf("%s devices are not sent passcodes.", cur.Type)}
	}
	address := cur.Email
	if cur.Type != mfa.Email {
		address = cur.Phone
	}
	if err := r.reg.Spend(ctx, env, user.ID, cur.Type, address); err != nil {
		return err
	}
	var send factor.Send
	if _, err := r.updateFrom(ctx, env.ID, user.ID, cur, func(d *mfa.Device) error {
		s, err := issuer.Issue(ctx, d, factor.Issue{EnvID: env.ID, Policy: devicePolicy(env, d), User: user, Message: msg, Now: r.now()})
		send = s
		return err
	}); err != nil {
		return err
	}
	return send(ctx)
}

// devicePolicy is the policy a device was enrolled under, or the
// environment's default for a record that names none or a policy since
// removed from the configuration.
func devicePolicy(env *engine.Environment, d *mfa.Device) *mfa.Policy {
	if p, ok := env.Policy(d.Policy); ok && d.Policy != "" {
		return p
	}
	return env.DefaultPolicy()
}
