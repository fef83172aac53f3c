package mfaenroll

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
)

func TestAllowedActions(t *testing.T) {
	const (
		create   = actions.DeviceCreate
		activate = actions.DeviceActivate
		resend   = actions.OTPResend
		del      = actions.DeviceDelete
		skip     = actions.DeviceSkipEnrollment
	)
	tests := []struct {
		status           string
		skip, resendable bool
		want             []string
	}{
		{DeviceEnrollmentRequired, false, false, []string{create}},
		{DeviceEnrollmentRequired, true, false, []string{create, skip}},
		{DeviceEnrollmentRequired, false, true, []string{create}},
		{DeviceEnrollmentRequired, true, true, []string{create, skip}},
		{ActivationRequired, false, false, []string{activate, del}},
		{ActivationRequired, true, false, []string{activate, del}},
		{ActivationRequired, false, true, []string{activate, resend, del}},
		{ActivationRequired, true, true, []string{activate, resend, del}},
		{PairingRequired, true, true, []string{del, skip}},
		{PairingRequired, false, false, []string{del}},
		{MobilePairingFailure, true, true, []string{create, del, skip}},
		{MobilePairingFailure, false, false, []string{create, del}},
		{Enrolled, true, true, []string{}},
		{Skipped, true, true, []string{}},
	}
	for _, tc := range tests {
		m := newMachine(tc.status, tc.skip, tc.resendable)
		got := allowedActions(m)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s skip=%v resendable=%v: allowed %v, want %v", tc.status, tc.skip, tc.resendable, got, tc.want)
		}
		if m.Current() != tc.status {
			t.Errorf("machine starts at %s, want %s", m.Current(), tc.status)
		}
		// check agrees with the list for every action.
		h := machineAt(tc.status, tc.skip, tc.resendable)
		if !reflect.DeepEqual(h.allowed, got) {
			t.Errorf("%s: the cached shape allows %v, the machine %v", tc.status, h.allowed, got)
		}
		for _, a := range actions.Names() {
			allowed := h.check(a) == nil
			if allowed != contains(tc.want, a) {
				t.Errorf("%s: check(%s) allowed=%v, list %v", tc.status, a, allowed, tc.want)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestCheckExplains(t *testing.T) {
	h := machineAt(ActivationRequired, false, true)
	err := h.check(actions.DeviceSkipEnrollment)
	var e *engine.Error
	if !errors.As(err, &e) {
		t.Fatalf("check = %v", err)
	}
	if e.Status != http.StatusConflict || e.Code != engine.CodeActionNotAllowed {
		t.Fatalf("status/code = %d %s", e.Status, e.Code)
	}
	want := "Action device.skipEnrollment is not allowed in status ACTIVATION_REQUIRED; allowed now: device.activate, otp.resend, device.delete."
	if e.Message != want {
		t.Fatalf("message = %q\nwant      %q", e.Message, want)
	}
	if len(e.Details) != 1 || e.Details[0].Target != "action" || e.Details[0].Code != engine.DetailInvalidValue {
		t.Fatalf("details = %+v", e.Details)
	}
	inner := e.Details[0].InnerError
	if inner["status"] != ActivationRequired ||
		!reflect.DeepEqual(inner["allowedActions"], []string{actions.DeviceActivate, actions.OTPResend, actions.DeviceDelete}) {
		t.Fatalf("innerError = %v", inner)
	}

	// Unknown action names are refused too.
	if err := (machineAt(DeviceEnrollmentRequired, true, true)).check("device.rename"); err == nil ||
		!strings.Contains(err.Error(), "allowed now: device.create, device.skipEnrollment.") {
		t.Fatalf("unknown action: %v", err)
	}
	// otp.resend for a TOTP device (not resendable).
	if err := (machineAt(ActivationRequired, true, false)).check(actions.OTPResend); err == nil ||
		!strings.Contains(err.Error(), "status ACTIVATION_REQUIRED; allowed now: device.activate, device.delete.") {
		t.Fatalf("resend of TOTP: %v", err)
	}
}

func TestAdvance(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		from, action, to string
		skip, resendable bool
	}{
		{DeviceEnrollmentRequired, actions.DeviceCreate, ActivationRequired, false, false},
		{DeviceEnrollmentRequired, actions.DeviceSkipEnrollment, Skipped, true, false},
		{ActivationRequired, actions.DeviceActivate, Enrolled, false, false},
		{ActivationRequired, actions.OTPResend, ActivationRequired, false, true}, // self-loop
		{ActivationRequired, actions.DeviceDelete, DeviceEnrollmentRequired, false, true},
		{PairingRequired, actions.DeviceDelete, DeviceEnrollmentRequired, false, false},
		{MobilePairingFailure, actions.DeviceDelete, DeviceEnrollmentRequired, false, false},
		{DeviceEnrollmentRequired, createForPairing, PairingRequired, false, false},
		{MobilePairingFailure, actions.DeviceCreate, ActivationRequired, false, false},
		{MobilePairingFailure, createForPairing, PairingRequired, false, false},
		{PairingRequired, actions.MobilePair, Enrolled, false, false},
		{PairingRequired, pairingFailed, MobilePairingFailure, false, false},
		{PairingRequired, actions.DeviceSkipEnrollment, Skipped, true, false},
	}
	for _, tc := range tests {
		h := machineAt(tc.from, tc.skip, tc.resendable)
		got, err := h.advance(ctx, tc.action)
		if err != nil || got != tc.to {
			t.Errorf("%s --%s--> %q, %v; want %s", tc.from, tc.action, got, err, tc.to)
		}
	}
	// An event the machine does not allow is an error, not a silent no-op.
	h := machineAt(DeviceEnrollmentRequired, false, false)
	if got, err := h.advance(ctx, actions.DeviceActivate); err == nil {
		t.Fatalf("advance of a forbidden action = %q, nil", got)
	}
}
