package mfaenroll

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

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

// machine is the state machine at one status, as a request uses it: the
// actions allowed and where each leads. Building a looplab/fsm machine for
// every request costs more than the rest of the step's work, and its
// answers depend only on the status and two flags, so each combination is
// asked of the machine once and kept (shapes).
type machine struct{ *shape }

type shape struct {
	status  string
	allowed []string          // client actions, in link order
	next    map[string]string // every event allowed here -> its destination
}

type shapeKey struct {
	status           string
	skip, resendable bool
}

var shapes sync.Map // shapeKey -> *shape

// allEvents are the events a shape probes: the client actions and the
// step's own.
var allEvents = append(append([]string{}, actionOrder...), createForPairing, pairingFailed, actions.MobilePair)

// machineAt is the machine at status, from the cache.
func machineAt(status string, skipAllowed, resendable bool) machine {
	key := shapeKey{status, skipAllowed, resendable}
	if sh, ok := shapes.Load(key); ok {
		return machine{sh.(*shape)}
	}
	m := newMachine(status, skipAllowed, resendable)
	sh := &shape{status: status, allowed: allowedActions(m), next: map[string]string{}}
	for _, e := range allEvents {
		if !m.Can(e) {
			continue
		}
		probe := newMachine(status, skipAllowed, resendable)
		err := probe.Event(context.Background(), e)
		var noTransition fsm.NoTransitionError
		if err != nil && !errors.As(err, &noTransition) { // a self-loop (otp.resend) is fine
			panic("mfaenroll: state machine: " + err.Error())
		}
		sh.next[e] = probe.Current()
	}
	actual, _ := shapes.LoadOrStore(key, sh)
	return machine{actual.(*shape)}
}

// check explains why an action is not allowed now, naming the status and
// the allowed actions; nil when it is allowed.
func (h machine) check(action string) error {
	if _, ok := h.next[action]; ok {
		return nil
	}
	return &engine.Error{Status: http.StatusConflict, Code: engine.CodeActionNotAllowed,
		Message: fmt.Sprintf("Action %s is not allowed in status %s; allowed now: %s.",
			action, h.status, strings.Join(h.allowed, ", ")),
		Details: []engine.ErrorDetail{{Code: engine.DetailInvalidValue, Target: "action", Message: action + " is not allowed now",
			InnerError: map[string]any{"status": h.status, "allowedActions": h.allowed}}}}
}

// advance returns the status the event leads to.
func (h machine) advance(_ context.Context, event string) (string, error) {
	dst, ok := h.next[event]
	if !ok {
		return "", fmt.Errorf("mfaenroll: event %s in status %s", event, h.status)
	}
	return dst, nil
}
