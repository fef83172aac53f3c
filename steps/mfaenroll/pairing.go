package mfaenroll

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

// A device that pairs itself (MOBILE): PAIRING_REQUIRED holds the pending
// device with its key until the mobile API turns the app's request into
// mobile.pair. Whatever the verdict the key is spent: a success claims it
// (the commit fails if it is no longer among the user's valid keys), a
// failure moves the execution to MOBILE_PAIRING_FAILURE and drops it, and
// the execution's compare-and-set lets one pairing of a key win.

const expiredMessage = "The pairing key has expired; create the device again (device.create) for a new one."

// pair handles mobile.pair.
func (s *Step) pair(ctx context.Context, r *run, m machine, p *actions.Pairing) (*engine.Outcome, error) {
	d := r.st.Pending
	pr, ok := s.pairer(d)
	if !ok || subtle.ConstantTimeCompare([]byte(pr.PairingKey(*d).Hash), []byte(p.KeyHash)) != 1 {
		// The key was this execution's once (its index points here) but
		// the device was deleted or replaced since.
		return nil, factor.PairingFailure(http.StatusNotFound, factor.PairingKeyNotFound, "No such pairing key.")
	}
	switch r.st.Status {
	case PairingRequired:
	case MobilePairingFailure:
		if e := r.st.PairingError; e != nil && e.Code == factor.PairingKeyExpired {
			expired := factor.PairingFailure(http.StatusGone, factor.PairingKeyExpired, e.Message)
			if r.keyExpired {
				// Expired while nobody tried: record it (the key is spent),
				// and answer it.
				return s.pairingFailed(r, m, expired)
			}
			return nil, expired // recorded already: nothing to write
		}
		return nil, factor.PairingFailure(http.StatusConflict, factor.PairingKeyUsed, "This pairing key was used already; start the enrollment again for a new one.")
	default:
		return nil, factor.PairingFailure(http.StatusNotFound, factor.PairingKeyNotFound, "No such pairing key.")
	}
	env, user := r.sc.Env, r.in.UserID
	valid, err := s.deps.PairingKeys.PairingKeyValid(ctx, env.ID, user, p.KeyHash)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	if !valid {
		return s.pairingFailed(r, m, factor.PairingFailure(http.StatusGone, factor.PairingKeyExpired,
			fmt.Sprintf("The pairing key was voided: a user holds at most %d valid keys and newer ones were made. Start the enrollment again.", pr.PairingKey(*d).Max)))
	}
	v, err := pr.Pair(ctx, factor.Pair{Env: env, Policy: r.policy, Pending: *d, Pairing: p, Now: r.sc.Now})
	if err != nil {
		return nil, err
	}
	if v.Failure != nil {
		return s.pairingFailed(r, m, v.Failure)
	}
	n, err := s.deps.Devices.CountDevices(ctx, env.ID, user)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	max := env.MFASettings.Pairing.MaxAllowedDevices
	if n >= max {
		return s.pairingFailed(r, m, factor.PairingFailure(http.StatusConflict, factor.DeviceLimitReached,
			fmt.Sprintf("The user already has the maximum of %d devices; delete one and pair again.", max)))
	}
	v.Device.Policy = r.policy.ID
	data, err := v.Device.Marshal()
	if err != nil {
		return nil, engine.AsError(err)
	}
	key := pr.PairingKey(*d)
	p.DeviceID = v.Device.ID
	return &engine.Outcome{
		Result:  Enrolled,
		Outputs: map[string]any{"device": map[string]any{"id": v.Device.ID, "type": mfa.Mobile}},
		Writes: []store.Write{
			{Op: store.CreateDevice, Device: store.Device{EnvID: env.ID, UserID: user, ID: v.Device.ID, Version: 1, Data: data}, MaxDevices: max},
			{Op: store.ClaimPairingKey, Device: store.Device{EnvID: env.ID, UserID: user}, PairingKey: &key},
		},
	}, nil
}

// pairingFailed moves the execution to MOBILE_PAIRING_FAILURE with the
// failure, spends the key, and answers the failure to the app.
func (s *Step) pairingFailed(r *run, m machine, failure *engine.Error) (*engine.Outcome, error) {
	out := &engine.Outcome{Writes: r.voidPairingKey(), Err: failure}
	r.st.PairingError = &engine.ErrorDetail{Code: failure.Code, Message: failure.Message}
	if r.st.Status == PairingRequired {
		if _, err := m.advance(context.Background(), pairingFailed); err != nil {
			return nil, err
		}
	}
	r.st.Status = MobilePairingFailure
	out.State = r.st
	return out, nil
}
