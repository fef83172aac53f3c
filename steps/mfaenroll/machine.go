package mfaenroll

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/looplab/fsm"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
)

// Flow states of the step (seed 003) and its two ends.
const (
	DeviceEnrollmentRequired = "DEVICE_ENROLLMENT_REQUIRED"
	ActivationRequired       = "ACTIVATION_REQUIRED"
	PairingRequired          = "PAIRING_REQUIRED"
	MobilePairingFailure     = "MOBILE_PAIRING_FAILURE"
	Enrolled                 = "ENROLLED"
	Skipped                  = "SKIPPED"
)

// Events that are not client actions: device.create of a device that
// pairs itself (it leads to PAIRING_REQUIRED), and the pairing's failure.
// mobile.pair is the mobile API's action; none of them is ever a link.
const (
	createForPairing = "device.create(pairing)"
	pairingFailed    = "pairing.failed"
)

// actionOrder is the order links are listed in, so responses are stable.
var actionOrder = []string{actions.DeviceCreate, actions.DeviceActivate, actions.OTPResend,
	actions.DeviceDelete, actions.DeviceSkipEnrollment}

// newMachine builds the step's state machine at a status. It is the one
// source of which actions are allowed: links are derived from it and every
// action is checked against it. Two events exist only where the
// configuration and the pending device allow them.
func newMachine(status string, skipAllowed, resendable bool) *fsm.FSM {
	creatable := []string{DeviceEnrollmentRequired, MobilePairingFailure}
	events := fsm.Events{
		{Name: actions.DeviceCreate, Src: creatable, Dst: ActivationRequired},
		{Name: createForPairing, Src: creatable, Dst: PairingRequired},
		{Name: actions.DeviceActivate, Src: []string{ActivationRequired}, Dst: Enrolled},
		{Name: actions.MobilePair, Src: []string{PairingRequired}, Dst: Enrolled},
		{Name: pairingFailed, Src: []string{PairingRequired}, Dst: MobilePairingFailure},
		{Name: actions.DeviceDelete, Src: []string{ActivationRequired, PairingRequired, MobilePairingFailure}, Dst: DeviceEnrollmentRequired},
	}
	if skipAllowed {
		events = append(events, fsm.EventDesc{Name: actions.DeviceSkipEnrollment,
			Src: []string{DeviceEnrollmentRequired, PairingRequired, MobilePairingFailure}, Dst: Skipped})
	}
	if resendable {
		events = append(events, fsm.EventDesc{Name: actions.OTPResend, Src: []string{ActivationRequired}, Dst: ActivationRequired})
	}
	return fsm.NewFSM(status, events, nil)
}

// allowedActions lists the machine's available events in link order.
func allowedActions(m *fsm.FSM) []string {
	out := make([]string, 0, 4)
	for _, a := range actionOrder {
		if m.Can(a) {
			out = append(out, a)
		}
	}
	return out
}

// machine wraps the state machine of one request.
type machine struct{ m *fsm.FSM }

// check explains why an action is not allowed now, naming the status and
// the allowed actions; nil when it is allowed.
func (h machine) check(action string) error {
	if h.m.Can(action) {
		return nil
	}
	allowed := allowedActions(h.m)
	return &engine.Error{Status: http.StatusConflict, Code: engine.CodeActionNotAllowed,
		Message: fmt.Sprintf("Action %s is not allowed in status %s; allowed now: %s.",
			action, h.m.Current(), strings.Join(allowed, ", ")),
		Details: []engine.ErrorDetail{{Code: engine.DetailInvalidValue, Target: "action", Message: action + " is not allowed now",
			InnerError: map[string]any{"status": h.m.Current(), "allowedActions": allowed}}}}
}

// advance fires the event and returns the new status.
func (h machine) advance(ctx context.Context, action string) (string, error) {
	err := h.m.Event(ctx, action)
	var noTransition fsm.NoTransitionError
	if err != nil && !errors.As(err, &noTransition) { // a self-loop (otp.resend) is fine
		return "", err
	}
	return h.m.Current(), nil
}
