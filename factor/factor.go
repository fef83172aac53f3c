// Package factor is what every kind of MFA device plugs into: an Enroller
// that pairs a new device with a user (inside the enrollment step), and, in
// the registry, the verification of an enrolled one. A factor is one
// package (factor/otp for EMAIL, SMS and VOICE; factor/totp for
// authenticator apps) that knows its own pending data, proof and record,
// and nothing of HTTP or of the step's shared phases (state machine,
// links, policy, device limit, cool-downs), which stay in steps/mfaenroll.
//
// Factors return plain data and send functions; the step turns them into
// engine outcomes and effects. Their errors are engine.Errors naming the
// action's field, so that a 400 reads the same whichever factor refused.
package factor

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

// Activation is how a pending device is activated; it tells the step's
// state machine where device.create leads.
type Activation int

const (
	// ByPasscode: ACTIVATION_REQUIRED, then device.activate with an otp.
	ByPasscode Activation = iota
	// ByPairing: PAIRING_REQUIRED until the device pairs itself from the
	// other side (a phone presenting the pairing key), or
	// MOBILE_PAIRING_FAILURE; the factor is a Pairer.
	ByPairing
	// ByCeremony: ACTIVATION_REQUIRED, then device.activate with a WebAuthn
	// attestation (and its origin) instead of an otp.
	ByCeremony
)

// User is who the device is enrolled for, as the step's inputs say.
type User struct {
	ID, Username, Email, Phone string
}

// Message is what a factor that sends a passcode needs to word it.
type Message struct {
	Locale, Variant string
	Variables       map[string]string
}

// Pending is a device being enrolled. The common fields are the step's to
// show and guard; Data is the factor's own, opaque to everyone else.
type Pending struct {
	ID        string          `json:"id"`
	Type      mfa.DeviceType  `json:"t"`
	Nickname  string          `json:"n,omitempty"`
	Address   string          `json:"a,omitempty"` // where passcodes go, when the factor sends any
	CreatedAt time.Time       `json:"c"`
	Data      json.RawMessage `json:"fd,omitempty"`
}

// Send delivers a passcode after the state that records it was saved. Its
// error says whether the failure was permanent (delivery.IsPermanent).
type Send func(ctx context.Context) error

// Begin is a device.create for the factor.
type Begin struct {
	Env      *engine.Environment
	EnvID    string
	Settings *mfa.Settings // the environment's (phone rules)
	Policy   *mfa.Policy
	User     User
	Message  Message
	Action   *actions.CreateDevice
	ID       string // the new device's id
	// ExecutionID is the execution the device is enrolled in (a pairing
	// key's index points at it).
	ExecutionID string
	// BaseURL is the public base URL the client called (a pairing URI
	// names the server).
	BaseURL string
	Now     time.Time
}

// Activate is a device.activate of a pending device.
type Activate struct {
	EnvID   string
	UserID  string
	Policy  *mfa.Policy
	Pending Pending
	Proof   *actions.ActivateDevice
	Now     time.Time
	// Attempt is this proof's number among the pending device's attempts,
	// as the regulation counted it before the proof is judged (1 for the
	// first): the factor's limit is applied to it, not to a count of its
	// own, so that parallel proofs cannot get past the limit.
	Attempt int
}

// AttemptLimit is how many proofs a pending device takes: Count, then it
// is refused for CoolDown, or, with StaysVoid, until it gets a new
// passcode. Subject names what is counted (a new passcode is a new one).
type AttemptLimit struct {
	Subject   string
	Count     int
	CoolDown  time.Duration
	StaysVoid bool
}

// Verdict is how a proof was judged.
type Verdict struct {
	// OK: the proof is right and Device is the record to enroll.
	OK     bool
	Device *mfa.Device
	// Otherwise Refusal is the 400 to answer (its detail names the field
	// and carries innerError.remainingAttempts), and Pending the pending
	// device with the attempt counted, to save with it.
	Refusal *engine.Error
	Pending Pending
	// Exhausted: this refusal used the last attempt; the step's cool-down
	// for a new device starts (CoolDownUntil).
	Exhausted     bool
	CoolDownUntil time.Time
}

// Enroller pairs new devices of its types with a user.
type Enroller interface {
	// Types lists the device types it enrolls.
	Types() []mfa.DeviceType
	Activation() Activation
	// Target checks the action's factor fields and returns the address
	// passcodes would go to ("" when the factor sends none), before the
	// step's guards decide whether anything may be sent.
	Target(b Begin) (address string, err error)
	// Begin makes the pending device at address, and the passcode to send
	// once it is saved (nil when the factor sends none).
	Begin(ctx context.Context, b Begin, address string) (Pending, Send, error)
	// Attempts is the pending device's limit on proofs.
	Attempts(p Pending, policy *mfa.Policy) AttemptLimit
	// Counted records on p that attempt proofs have been refused (the
	// regulation's count, which parallel requests may have raised past
	// what p says), with what running out of attempts means for it.
	Counted(p Pending, policy *mfa.Policy, attempt int, now time.Time) Pending
	// Usable reports whether a proof may be tried for p now (false for a
	// void passcode, or during a cool-down): the step offers
	// device.activate only then.
	Usable(p Pending, policy *mfa.Policy, now time.Time) bool
	// Activate judges a proof for the pending device.
	Activate(ctx context.Context, a Activate) (Verdict, error)
	// LockedOut sets the pending device for after the user's lockout,
	// which this attempt started and which ends at until.
	LockedOut(p Pending, policy *mfa.Policy, until time.Time) Pending
	// View is the pending device as the client sees it; selfURL is the
	// execution's, for links ("" outside HTTP).
	View(p Pending, policy *mfa.Policy, selfURL string) map[string]any
}

// Reissuer is an Enroller whose passcode can be sent again (otp.resend).
type Reissuer interface {
	// CheckResend refuses a new passcode sooner than the factor allows
	// (429 with the wait).
	CheckResend(p Pending, policy *mfa.Policy, now time.Time) error
	// Reissue replaces the pending device's passcode with a fresh one.
	Reissue(ctx context.Context, b Begin, p Pending) (Pending, Send, error)
	// Undelivered marks the pending passcode as never delivered: it holds
	// no resend cool-down.
	Undelivered(p Pending) Pending
}

// Pairer is an Enroller whose pending device pairs itself from another
// device (ByPairing): the step holds the execution in PAIRING_REQUIRED
// until Pair judges the pairing, which arrives as the mobile.pair action.
type Pairer interface {
	// PairingKey is the pending device's key as the user's set of valid
	// keys holds it (added when the device is created, dropped when it is
	// deleted, claimed when it pairs).
	PairingKey(p Pending) store.PairingKey
	// ExpiresAt is when p's key expires: the step turns it into
	// MOBILE_PAIRING_FAILURE then, with no write.
	ExpiresAt(p Pending) time.Time
	// PairingView is what the client shows for pairing (the seed's
	// pairingKey); selfURL is the execution's, for the QR code's link.
	PairingView(p Pending, selfURL string) map[string]any
	// Pair judges a pairing of p. A refusal is a Verdict with Failure
	// set: the pairing failed for good (MOBILE_PAIRING_FAILURE).
	Pair(ctx context.Context, a Pair) (PairVerdict, error)
}

// Pairing failures: the execution's error.code in MOBILE_PAIRING_FAILURE
// and the code of the pairing app's 4xx answer.
const (
	PairingKeyExpired   = "PAIRING_KEY_EXPIRED"   // 410: expired, or voided by newer keys
	PairingKeyUsed      = "PAIRING_KEY_USED"      // 409: this key was presented before
	PairingKeyNotFound  = "PAIRING_KEY_NOT_FOUND" // 404: no such key (or no longer this execution's)
	ApplicationMismatch = "APPLICATION_MISMATCH"  // 400: another application than the key's
	DeviceLimitReached  = "DEVICE_LIMIT_REACHED"  // 409: the user has the maximum of devices
	PushTokenRequired   = "PUSH_TOKEN_REQUIRED"   // 400: the application needs a push token
)

// PairingFailure is a pairing refused with one of the codes above.
func PairingFailure(status int, code, message string) *engine.Error {
	return &engine.Error{Status: status, Code: code, Message: message}
}

// Pair is a pairing of a pending device.
type Pair struct {
	Env     *engine.Environment
	Policy  *mfa.Policy
	Pending Pending
	Pairing *actions.Pairing
	Now     time.Time
}

// PairVerdict is how a pairing was judged: Device to enroll, or Failure
// (its Code is the execution's error.code and the app's answer).
type PairVerdict struct {
	Device  *mfa.Device
	Failure *engine.Error
}

// Resourcer is an Enroller that serves read-only resources of a pending
// device under the execution URL (the TOTP QR code).
type Resourcer interface {
	ResourceNames() []string
	Resource(p Pending, name string) (contentType string, body []byte, err error)
}

// Registry holds the enrollers by device type.
type Registry struct {
	byType map[mfa.DeviceType]Enroller
	names  []string
}

// NewRegistry registers enrollers; two for one type is a programming error.
func NewRegistry(enrollers ...Enroller) *Registry {
	r := &Registry{byType: map[mfa.DeviceType]Enroller{}}
	seen := map[string]bool{}
	for _, e := range enrollers {
		for _, t := range e.Types() {
			if _, dup := r.byType[t]; dup {
				panic("factor: two enrollers for " + string(t))
			}
			r.byType[t] = e
		}
		if rs, ok := e.(Resourcer); ok {
			for _, n := range rs.ResourceNames() {
				if !seen[n] {
					seen[n] = true
					r.names = append(r.names, n)
				}
			}
		}
	}
	return r
}

// Enroller returns the enroller of t.
func (r *Registry) Enroller(t mfa.DeviceType) (Enroller, bool) {
	e, ok := r.byType[t]
	return e, ok
}

// Supports reports whether a factor enrolls t.
func (r *Registry) Supports(t mfa.DeviceType) bool {
	_, ok := r.byType[t]
	return ok
}

// ResourceNames lists every resource name the factors serve.
func (r *Registry) ResourceNames() []string { return append([]string(nil), r.names...) }

// Invalid is the 400 of one field of the action.
func Invalid(target, code, message string) *engine.Error {
	return engine.InvalidField(target, code, message)
}

// CheckPasscodeProof checks the shape of a device.activate that carries a
// passcode: 6 to 10 digits, and nothing of a WebAuthn ceremony.
func CheckPasscodeProof(p *actions.ActivateDevice) error {
	if (len(p.Attestation) > 0 && string(p.Attestation) != "null") || p.Origin != "" {
		return Invalid("attestation", engine.DetailInvalidValue, "is only for PLATFORM and SECURITY_KEY devices")
	}
	if p.OTP == "" {
		return Invalid("otp", engine.DetailRequired, "is required")
	}
	if len(p.OTP) < 6 || len(p.OTP) > 10 || strings.Trim(p.OTP, "0123456789") != "" {
		return Invalid("otp", engine.DetailInvalidValue, "must be 6 to 10 digits")
	}
	return nil
}

// CheckCeremonyProof checks the shape of a device.activate that carries a
// WebAuthn attestation: one is there, and no otp.
func CheckCeremonyProof(p *actions.ActivateDevice) error {
	if p.OTP != "" {
		return Invalid("otp", engine.DetailInvalidValue, "is not used for PLATFORM and SECURITY_KEY devices; send the attestation")
	}
	if len(p.Attestation) == 0 || string(p.Attestation) == "null" {
		return Invalid("attestation", engine.DetailRequired, "is required: the PublicKeyCredential navigator.credentials.create() returned, as JSON")
	}
	if len(p.Origin) > 512 {
		return Invalid("origin", engine.DetailInvalidValue, "must be at most 512 characters")
	}
	return nil
}

// Verifier verifies proofs for enrolled devices of its types, outside any
// execution (the registry calls it for every front door).
type Verifier interface {
	Types() []mfa.DeviceType
	// Verify judges proof against dev at now. A verification that changes
	// the record (the last accepted TOTP step) changes dev and says so;
	// the registry saves it with compare-and-set and, on a conflict,
	// verifies again against the record that won, so that one code is
	// accepted once.
	Verify(ctx context.Context, dev *mfa.Device, policy *mfa.Policy, proof string, now time.Time) (Checked, error)
}

// Checked is how a verification went.
type Checked struct {
	OK       bool
	Replayed bool // the code was right but already used
	Changed  bool // dev was changed and must be saved for OK to hold
}

// Forgetter is a Verifier that keeps something of a device outside the
// user's registry (an index entry), to remove once the device is deleted.
type Forgetter interface {
	Forget(ctx context.Context, envID, userID string, dev *mfa.Device) error
}

// Issuer is a Verifier of devices that are sent a passcode to verify (an
// e-mail, an SMS, a call): it issues one to an enrolled device.
type Issuer interface {
	// Issue puts a new passcode on dev (which the registry saves with
	// compare-and-set) and returns its send.
	Issue(ctx context.Context, dev *mfa.Device, b Issue) (Send, error)
}

// Issue is what a passcode to an enrolled device needs.
type Issue struct {
	EnvID   string
	Policy  *mfa.Policy
	User    User
	Message Message
	Now     time.Time
}

// AttemptLimiter is a Verifier whose devices have a limit of their own on
// proofs (the policy's failure count), on top of the user's.
type AttemptLimiter interface {
	DeviceAttempts(dev *mfa.Device, policy *mfa.Policy) AttemptLimit
}
