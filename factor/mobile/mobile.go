// Package mobile is the factor of MOBILE devices: a phone running an
// authenticator app (or an app with the mobile SDK) pairs itself with the
// user by presenting a pairing key that the enrollment showed (as a code
// and a QR code), together with a public key it generated. The device is
// then in the registry with that key, which verifies what the phone signs
// later (signed.go), its push token and a seed for offline passcodes.
//
// A pairing key is 12 digits (NUMERIC) or 16 characters without look-alikes
// (ALPHANUMERIC), from crypto/rand; the store finds it by a keyed hash and
// holds the key itself only sealed in the execution, bound to the device.
package mobile

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

// QRCodeResource is the pairing QR code's name under the execution URL.
const QRCodeResource = "pairing-qrcode.png"

// maxKeyAttempts bounds the new keys tried when one collides.
const maxKeyAttempts = 8

// IndexGrace is how long a pairing key's index entry outlives the key.
const IndexGrace = 15 * time.Minute

// MaxValidKeys is how many valid pairing keys a user holds at most; a new
// one voids the one that expires first.
const MaxValidKeys = 20

// URIScheme starts the pairing URI an app scans:
// enrollflow://pair?v=1&server=<base URL>&env=<environment>&code=<key>.
const URIScheme = "enrollflow"

// Factor enrolls and verifies MOBILE devices.
type Factor struct {
	Sealer       *mfa.Sealer // the pairing key in the execution, the offline seed in the record
	KeyHash      []byte      // mfa.Keys.PairingKey
	Applications *Applications
	Index        store.Indexes // pairing-key hash -> execution
}

var (
	_ factor.Enroller       = (*Factor)(nil)
	_ factor.Pairer         = (*Factor)(nil)
	_ factor.Resourcer      = (*Factor)(nil)
	_ factor.Verifier       = (*Factor)(nil)
	_ factor.AttemptLimiter = (*Factor)(nil)
)

// data is the factor's part of a pending device.
type data struct {
	Hash        string    `json:"h"` // the key's keyed hash, as the index and the user's valid keys hold it
	SealedURI   string    `json:"k"` // the pairing URI (with the key), sealed and bound to the device id
	ExpiresAt   time.Time `json:"e"`
	Application string    `json:"a"`
}

func decode(p factor.Pending) (data, error) {
	var d data
	if err := json.Unmarshal(p.Data, &d); err != nil {
		return d, fmt.Errorf("mobile: pending device %s: %w", p.ID, err)
	}
	return d, nil
}

func (f *Factor) Types() []mfa.DeviceType       { return []mfa.DeviceType{mfa.Mobile} }
func (f *Factor) Activation() factor.Activation { return factor.ByPairing }

// Target: a phone has no address; it needs an application.
func (f *Factor) Target(b factor.Begin) (string, error) {
	if b.Action.Email != "" || b.Action.Phone != "" {
		field := "email"
		if b.Action.Phone != "" {
			field = "phone"
		}
		return "", factor.Invalid(field, engine.DetailInvalidValue, "is not used for MOBILE devices")
	}
	if b.Action.Application == nil || b.Action.Application.ID == "" {
		return "", factor.Invalid("application.id", engine.DetailRequired, "is required for MOBILE devices")
	}
	return "", nil
}

// Begin makes the pairing key and writes its index entry, before the
// execution that holds it is saved: an entry whose execution was never
// saved points at an execution that does not hold its hash, which a
// pairing treats as an unknown key.
func (f *Factor) Begin(ctx context.Context, b factor.Begin, _ string) (factor.Pending, factor.Send, error) {
	appID := b.Action.Application.ID
	if !b.Policy.Mobile.Allows(appID) {
		return factor.Pending{}, nil, factor.Invalid("application.id", engine.DetailPolicyViolation,
			fmt.Sprintf("application %q may not pair devices here; allowed: %v", appID, b.Policy.Mobile.Applications))
	}
	app, err := f.Applications.Get(ctx, b.Env, appID)
	if err != nil {
		if engine.AsError(err).Status == http.StatusNotFound {
			return factor.Pending{}, nil, factor.Invalid("application.id", engine.DetailInvalidValue, fmt.Sprintf("no application %q in this environment", appID))
		}
		return factor.Pending{}, nil, err
	}
	p := factor.Pending{ID: b.ID, Type: mfa.Mobile, Nickname: b.Action.Nickname, CreatedAt: b.Now}
	expires := b.Now.Add(app.PairingKeyLifetime.Std())
	// The index entry is created only where there is none: a key that
	// collides with a live one (of any user) is never handed out, so the
	// index cannot point two executions' pairings at one.
	var d data
	for attempt := 0; ; attempt++ {
		code, err := NewPairingKey(b.Settings.Pairing.PairingKeyFormat)
		if err != nil {
			return factor.Pending{}, nil, engine.AsError(err)
		}
		d = data{Hash: f.Hash(b.EnvID, code), ExpiresAt: expires, Application: appID,
			SealedURI: f.Sealer.Seal([]byte(PairingURI(b.BaseURL, b.EnvID, code)), p.ID)}
		// The entry outlives the key by IndexGrace, so that an app
		// presenting a key that just expired hears PAIRING_KEY_EXPIRED,
		// not "unknown".
		created, err := f.Index.PutIndex(ctx, b.EnvID, store.IndexPairingKey, d.Hash, b.ExecutionID, expires.Add(IndexGrace))
		if err != nil {
			return factor.Pending{}, nil, engine.Unavailable(err)
		}
		if created {
			break
		}
		if attempt == maxKeyAttempts {
			return factor.Pending{}, nil, engine.AsError(fmt.Errorf("mobile: %d pairing keys in a row collided with live ones", maxKeyAttempts+1))
		}
	}
	raw, _ := json.Marshal(d)
	p.Data = raw
	return p, nil, nil
}

// PairingURI is what the QR code holds: everything the app needs.
func PairingURI(baseURL, envID, code string) string {
	q := url.Values{"v": {"1"}, "server": {baseURL}, "env": {envID}, "code": {code}}
	return URIScheme + "://pair?" + q.Encode()
}

// ParsePairingURI reads a pairing URI back (for the app's side).
func ParsePairingURI(s string) (server, envID, code string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != URIScheme || u.Host != "pair" {
		return "", "", "", fmt.Errorf("not a pairing URI (%s://pair?...)", URIScheme)
	}
	q := u.Query()
	server, envID, code = q.Get("server"), q.Get("env"), q.Get("code")
	if server == "" || envID == "" || code == "" {
		return "", "", "", fmt.Errorf("pairing URI without server, env or code")
	}
	return server, envID, code, nil
}

// NewPairingKey makes a key of the format, uniformly from crypto/rand.
func NewPairingKey(format string) (string, error) {
	alphabet, n := "0123456789", 12
	if format == mfa.PairingKeyAlphanumeric {
		alphabet, n = mfa.PairingKeyAlphabet, 16
	}
	out := make([]byte, n)
	size := big.NewInt(int64(len(alphabet)))
	for i := range out {
		x, err := rand.Int(rand.Reader, size)
		if err != nil {
			return "", err
		}
		out[i] = alphabet[x.Int64()]
	}
	return string(out), nil
}

// NormalizeKey is a key as typed: spaces and dashes dropped, upper case.
func NormalizeKey(s string) string {
	return strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(s)))
}

// ValidKeyShape reports whether s (normalized) can be a pairing key of
// either format, so that junk is refused before it costs a lookup.
func ValidKeyShape(s string) bool {
	if len(s) != 12 && len(s) != 16 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789"+mfa.PairingKeyAlphabet, c) {
			return false
		}
	}
	return true
}

// Hash is the keyed hash a key is found by.
func (f *Factor) Hash(envID, key string) string {
	return hex.EncodeToString(mfa.KeyedHash(f.KeyHash, envID, NormalizeKey(key))[:20])
}

// PairingKey is the pending key as the user's valid keys hold it.
func (f *Factor) PairingKey(p factor.Pending) store.PairingKey {
	d, _ := decode(p)
	return store.PairingKey{Hash: d.Hash, ExpiresAt: d.ExpiresAt, Max: MaxValidKeys}
}

// ExpiresAt is when the pending device's key expires.
func (f *Factor) ExpiresAt(p factor.Pending) time.Time { d, _ := decode(p); return d.ExpiresAt }

// Pair judges the app's pairing: the key must be this device's and
// unexpired, the application the one it was made for, and the push token
// there when the application requires one. The device limit is the step's.
func (f *Factor) Pair(ctx context.Context, a factor.Pair) (factor.PairVerdict, error) {
	d, err := decode(a.Pending)
	if err != nil {
		return factor.PairVerdict{}, engine.AsError(err)
	}
	pr := a.Pairing
	switch {
	case !hmac.Equal([]byte(pr.KeyHash), []byte(d.Hash)):
		return factor.PairVerdict{}, factor.PairingFailure(http.StatusNotFound, factor.PairingKeyNotFound, "No such pairing key.")
	case !a.Now.Before(d.ExpiresAt):
		return factor.PairVerdict{Failure: factor.PairingFailure(http.StatusGone, factor.PairingKeyExpired,
			"The pairing key has expired; start the enrollment of this phone again to get a new one.")}, nil
	case pr.ApplicationID != d.Application:
		return factor.PairVerdict{Failure: factor.PairingFailure(http.StatusBadRequest, factor.ApplicationMismatch,
			fmt.Sprintf("The pairing key was made for another application than %q; pair with the app it was made for.", pr.ApplicationID))}, nil
	}
	// The application is judged as it is now: one deleted, or no longer
	// allowed by the policy, pairs no more phones with the keys made for it.
	app, err := f.Applications.Get(ctx, a.Env, d.Application)
	if err != nil && engine.AsError(err).Status != http.StatusNotFound {
		return factor.PairVerdict{}, err
	}
	if err != nil || !a.Policy.Mobile.Allows(d.Application) || !a.Policy.Pairable(mfa.Mobile) {
		return factor.PairVerdict{Failure: factor.PairingFailure(http.StatusBadRequest, factor.ApplicationMismatch,
			fmt.Sprintf("Application %q may no longer pair devices here.", d.Application))}, nil
	}
	if app.PushTokenRequired && pr.Device.PushToken == "" {
		return factor.PairVerdict{Failure: factor.PairingFailure(http.StatusBadRequest, factor.PushTokenRequired,
			"This application must register a push token to pair; allow notifications and try again.")}, nil
	}
	key, err := ParsePublicKey(pr.PublicKey)
	if err != nil {
		return factor.PairVerdict{}, factor.Invalid("publicKey", engine.DetailInvalidValue, err.Error())
	}
	jwk, _ := key.MarshalJSON()
	p := a.Pending
	part := Part{Application: d.Application, PublicKey: jwk, PushToken: pr.Device.PushToken,
		Device:     DeviceInfo{Name: pr.Device.Name, Model: pr.Device.Model, OS: pr.Device.OS, OSVersion: pr.Device.OSVersion, AppVersion: pr.Device.AppVersion},
		SealedSeed: f.Sealer.Seal([]byte(pr.Seed), p.ID), PairedAt: a.Now}
	raw, _ := json.Marshal(part)
	nickname := p.Nickname
	if nickname == "" {
		nickname = pr.Device.Name
	}
	return factor.PairVerdict{Device: &mfa.Device{ID: p.ID, Type: mfa.Mobile, Status: mfa.StatusActive, Nickname: nickname,
		Factor: raw, CreatedAt: p.CreatedAt, UpdatedAt: a.Now}}, nil
}

// Part is the factor's part of a MOBILE device record.
type Part struct {
	Application string          `json:"application"`
	PublicKey   json.RawMessage `json:"publicKey"` // JWK, EC P-256: verifies what the phone signs
	PushToken   string          `json:"pushToken,omitempty"`
	Device      DeviceInfo      `json:"device"`
	SealedSeed  string          `json:"sealedSeed"`         // the offline-passcode seed, sealed and bound to the device id
	LastStep    int64           `json:"lastStep,omitempty"` // the last accepted offline passcode's time step
	PairedAt    time.Time       `json:"pairedAt"`
}

// DeviceInfo is what the app said of the phone.
type DeviceInfo struct {
	Name       string `json:"name,omitempty"`
	Model      string `json:"model,omitempty"`
	OS         string `json:"os,omitempty"`
	OSVersion  string `json:"osVersion,omitempty"`
	AppVersion string `json:"appVersion,omitempty"`
}

// ReadPart decodes a MOBILE device's part.
func ReadPart(dev *mfa.Device) (Part, error) {
	var p Part
	if err := json.Unmarshal(dev.Factor, &p); err != nil {
		return p, fmt.Errorf("mobile: device %s: %w", dev.ID, err)
	}
	return p, nil
}

// WritePart puts a part back into the record.
func WritePart(dev *mfa.Device, p Part) {
	dev.Factor, _ = json.Marshal(p)
}

// NewSeed is a fresh 160-bit offline-passcode seed, base32 as
// authenticator apps take it.
func NewSeed() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

// Attempts: nothing is proved inside the execution (the phone pairs).
func (f *Factor) Attempts(p factor.Pending, policy *mfa.Policy) factor.AttemptLimit {
	return factor.AttemptLimit{Subject: p.ID, Count: policy.Mobile.OTP.Failure.Count, CoolDown: policy.Mobile.OTP.Failure.CoolDown.Std()}
}

func (f *Factor) Counted(p factor.Pending, _ *mfa.Policy, _ int, _ time.Time) factor.Pending {
	return p
}
func (f *Factor) Usable(factor.Pending, *mfa.Policy, time.Time) bool                    { return false }
func (f *Factor) LockedOut(p factor.Pending, _ *mfa.Policy, _ time.Time) factor.Pending { return p }

// Activate: a phone is not activated with a passcode; it pairs.
func (f *Factor) Activate(context.Context, factor.Activate) (factor.Verdict, error) {
	return factor.Verdict{}, factor.Invalid("type", engine.DetailInvalidValue, "MOBILE devices are paired from the app with the pairing key, not activated")
}

// View is the pending device.
func (f *Factor) View(p factor.Pending, _ *mfa.Policy, _ string) map[string]any {
	d, _ := decode(p)
	v := map[string]any{"id": p.ID, "type": p.Type, "createdAt": p.CreatedAt, "application": map[string]any{"id": d.Application}}
	if p.Nickname != "" {
		v["nickname"] = p.Nickname
	}
	return v
}

// PairingView is the seed's pairingKey: the code, its expiry, the URI the
// QR code holds and the QR code's link.
func (f *Factor) PairingView(p factor.Pending, selfURL string) map[string]any {
	d, _ := decode(p)
	uri, err := f.Sealer.Open(d.SealedURI, p.ID)
	if err != nil {
		return map[string]any{"expiresAt": d.ExpiresAt.UTC()}
	}
	_, _, code, _ := ParsePairingURI(string(uri))
	v := map[string]any{"code": code, "expiresAt": d.ExpiresAt.UTC(), "uri": string(uri)}
	if selfURL != "" {
		v["qrCode"] = map[string]any{"href": selfURL + "/" + QRCodeResource, "type": "image/png"}
	}
	return v
}

func (f *Factor) ResourceNames() []string { return []string{QRCodeResource} }

// Resource is the QR code of the pairing URI, as a PNG.
func (f *Factor) Resource(p factor.Pending, name string) (string, []byte, error) {
	if name != QRCodeResource {
		return "", nil, engine.NotFound("resource")
	}
	d, err := decode(p)
	if err != nil {
		return "", nil, engine.AsError(err)
	}
	uri, err := f.Sealer.Open(d.SealedURI, p.ID)
	if err != nil {
		return "", nil, engine.AsError(err)
	}
	png, err := factor.QRCodePNG(string(uri))
	if err != nil {
		return "", nil, engine.AsError(err)
	}
	return "image/png", png, nil
}

// DeviceAttempts: the policy's mobile.otp.failure for offline passcodes.
func (f *Factor) DeviceAttempts(dev *mfa.Device, policy *mfa.Policy) factor.AttemptLimit {
	failure := policy.Mobile.OTP.Failure
	return factor.AttemptLimit{Subject: dev.ID + "#offline", Count: failure.Count, CoolDown: failure.CoolDown.Std()}
}

// Verify checks an offline passcode of a paired phone (TOTP over the seed
// it was given) and advances the last accepted time step, so that a code
// is accepted once.
func (f *Factor) Verify(_ context.Context, dev *mfa.Device, policy *mfa.Policy, proof string, now time.Time) (factor.Checked, error) {
	part, err := ReadPart(dev)
	if err != nil {
		return factor.Checked{}, err
	}
	seed, err := f.Sealer.Open(part.SealedSeed, dev.ID)
	if err != nil {
		return factor.Checked{}, err
	}
	step, ok, replayed := mfa.VerifyTOTP(string(seed), proof, now, policy.TOTP.PasscodeGracePeriod, part.LastStep)
	if !ok {
		return factor.Checked{Replayed: replayed}, nil
	}
	part.LastStep = step
	WritePart(dev, part)
	dev.UpdatedAt = now
	return factor.Checked{OK: true, Changed: true}, nil
}
