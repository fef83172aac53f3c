// Package webauthn is the factor of PLATFORM (a passkey on the user's
// device) and SECURITY_KEY (a roaming key) devices, on go-webauthn: no
// CBOR or signature is read here by hand. device.create makes the
// PublicKeyCredentialCreationOptions for navigator.credentials.create()
// and keeps the ceremony's session data in the pending device (in the
// execution, never in a node); device.activate brings the attestation
// back. Later front doors verify assertions with the enrolled credential
// (Verify).
package webauthn

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	gowebauthn "github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

// Detail codes of a refused ceremony (target attestation, or rp.id).
const (
	OriginMismatch           = "ORIGIN_MISMATCH"
	ChallengeMismatch        = "CHALLENGE_MISMATCH"
	ChallengeExpired         = "CHALLENGE_EXPIRED"
	UserVerificationRequired = "USER_VERIFICATION_REQUIRED"
	AuthenticatorNotAllowed  = "AUTHENTICATOR_NOT_ALLOWED"
	InvalidAttestation       = "INVALID_ATTESTATION"
	CredentialExists         = "CREDENTIAL_EXISTS"
	RPIDNotAllowed           = "RP_ID_NOT_ALLOWED"
)

// Factor enrolls and verifies WebAuthn credentials.
type Factor struct {
	// UserHandleKey makes each user's opaque user handle (an HMAC of the
	// environment and user id): stable, and no id in the clear.
	UserHandleKey []byte
	// Environments are the configured environments: an assertion is
	// judged by its relying party as configured now (origins, user
	// verification), not as it was at enrollment.
	Environments map[string]*engine.Environment
	Devices      store.Devices // the user's credentials, for excludeCredentials
	Index        store.Indexes // credential id -> its user and device, across users
}

var (
	_ factor.Enroller       = (*Factor)(nil)
	_ factor.Verifier       = (*Factor)(nil)
	_ factor.AttemptLimiter = (*Factor)(nil)
)

// data is the factor's part of a pending device.
type data struct {
	RPID    string                 `json:"rp"`
	Origins []string               `json:"o"`
	Options json.RawMessage        `json:"opt"` // publicKeyCredentialCreationOptions as the browser takes them
	Session gowebauthn.SessionData `json:"s"`
	// The ceremony's rules, from the environment when it began.
	UserVerification string   `json:"uv"`
	AAGUIDs          []string `json:"aa,omitempty"`
	Limit            int      `json:"fl"`
	CoolDown         int64    `json:"fc"` // seconds
	factor.Refusals
}

func decode(p factor.Pending) (data, error) {
	var d data
	if err := json.Unmarshal(p.Data, &d); err != nil {
		return d, fmt.Errorf("webauthn: pending device %s: %w", p.ID, err)
	}
	return d, nil
}

func with(p factor.Pending, d data) factor.Pending {
	p.Data, _ = json.Marshal(d)
	return p
}

func (f *Factor) Types() []mfa.DeviceType       { return []mfa.DeviceType{mfa.Platform, mfa.SecurityKey} }
func (f *Factor) Activation() factor.Activation { return factor.ByCeremony }

// UserHandle is the user's opaque WebAuthn user handle.
func (f *Factor) UserHandle(envID, userID string) []byte {
	return mfa.KeyedHash(f.UserHandleKey, envID, userID)
}

// Target checks the action: no address, no application, a configured
// relying party (400 RP_ID_NOT_ALLOWED naming rp.id).
func (f *Factor) Target(b factor.Begin) (string, error) {
	a := b.Action
	switch {
	case a.Email != "" || a.Phone != "":
		field := "email"
		if a.Phone != "" {
			field = "phone"
		}
		return "", factor.Invalid(field, engine.DetailInvalidValue, "is not used for PLATFORM and SECURITY_KEY devices")
	case a.Application != nil:
		return "", factor.Invalid("application.id", engine.DetailInvalidValue, "is only for MOBILE devices")
	}
	if _, err := relyingParty(b); err != nil {
		return "", err
	}
	return "", nil
}

func relyingParty(b factor.Begin) (mfa.RelyingParty, error) {
	id := ""
	if b.Action.RP != nil {
		id = b.Action.RP.ID
	}
	rp, ok := b.Env.WebAuthn.RelyingParty(id)
	if !ok {
		msg := fmt.Sprintf("%q is not a relying party of this environment", id)
		if id == "" {
			msg = "this environment has no WebAuthn relying party (webauthn.relyingParties)"
		}
		return rp, factor.Invalid("rp.id", RPIDNotAllowed, msg)
	}
	// The name the authenticator shows is the configured one: the client
	// (whoever holds the execution's URL) does not choose what a user's
	// authenticator says about who is asking.
	return rp, nil
}

// user is the WebAuthn user of one ceremony.
type user struct {
	handle      []byte
	name        string
	credentials []gowebauthn.Credential
}

func (u user) WebAuthnID() []byte                           { return u.handle }
func (u user) WebAuthnName() string                         { return u.name }
func (u user) WebAuthnDisplayName() string                  { return u.name }
func (u user) WebAuthnCredentials() []gowebauthn.Credential { return u.credentials }

func relyingPartyConfig(rp mfa.RelyingParty, w mfa.WebAuthn) (*gowebauthn.WebAuthn, error) {
	return gowebauthn.New(&gowebauthn.Config{RPID: rp.ID, RPDisplayName: rp.Name, RPOrigins: rp.Origins,
		AttestationPreference: protocol.ConveyancePreference(w.Attestation),
		Timeouts: gowebauthn.TimeoutsConfig{Registration: gowebauthn.TimeoutConfig{Timeout: w.Timeout.Std(), TimeoutUVD: w.Timeout.Std()},
			Login: gowebauthn.TimeoutConfig{Timeout: w.Timeout.Std(), TimeoutUVD: w.Timeout.Std()}}})
}

// Begin makes the creation options (with the user's credentials
// excluded) and keeps the session data, challenge included, in the
// pending device.
func (f *Factor) Begin(ctx context.Context, b factor.Begin, _ string) (factor.Pending, factor.Send, error) {
	rp, err := relyingParty(b)
	if err != nil {
		return factor.Pending{}, nil, err
	}
	w := b.Env.WebAuthn
	wa, err := relyingPartyConfig(rp, w)
	if err != nil {
		return factor.Pending{}, nil, engine.AsError(err)
	}
	creds, err := f.credentials(ctx, b.EnvID, b.User.ID)
	if err != nil {
		return factor.Pending{}, nil, err
	}
	excluded := make([]protocol.CredentialDescriptor, 0, len(creds))
	for _, c := range creds {
		excluded = append(excluded, c.Descriptor())
	}
	t, _ := mfa.ParseDeviceType(b.Action.Type)
	attachment := protocol.Platform
	if t == mfa.SecurityKey {
		attachment = protocol.CrossPlatform
	}
	// What the authenticator stores and shows (and may sync): the user's
	// name or e-mail address, never the user id (the handle is opaque).
	name := b.User.Username
	if name == "" {
		name = b.User.Email
	}
	if name == "" {
		name = rp.Name + " account"
	}
	creation, session, err := wa.BeginRegistration(user{handle: f.UserHandle(b.EnvID, b.User.ID), name: name},
		gowebauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{AuthenticatorAttachment: attachment,
			ResidentKey: protocol.ResidentKeyRequirement(w.ResidentKey), RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.UserVerificationRequirement(w.UserVerification)}),
		gowebauthn.WithConveyancePreference(protocol.ConveyancePreference(w.Attestation)),
		gowebauthn.WithCredentialParameters(credentialParameters),
		gowebauthn.WithExclusions(excluded))
	if err != nil {
		return factor.Pending{}, nil, engine.AsError(err)
	}
	if w.ResidentKey != "required" {
		creation.Response.AuthenticatorSelection.RequireResidentKey = nil
	}
	session.Expires = b.Now.Add(w.Timeout.Std()) // on the injected clock
	opts, err := json.Marshal(creation.Response)
	if err != nil {
		return factor.Pending{}, nil, engine.AsError(err)
	}
	p := factor.Pending{ID: b.ID, Type: t, Nickname: b.Action.Nickname, CreatedAt: b.Now}
	return with(p, data{RPID: rp.ID, Origins: rp.Origins, Options: opts, Session: *session, UserVerification: w.UserVerification,
		AAGUIDs: w.AllowedAAGUIDs, Limit: w.Failure.Count, CoolDown: int64(w.Failure.CoolDown.Std() / time.Second)}), nil, nil
}

// credentialParameters are the algorithms asked for: ES256, EdDSA and
// RS256 (the ones authenticators implement); RSA keys are further bounded
// by checkKey.
var credentialParameters = []protocol.CredentialParameter{
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgES256},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgEdDSA},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgRS256},
}

// checkKey refuses a credential public key that would cost more to verify
// than any authenticator needs: RSA beyond 4096 bits or with an exponent
// other than 65537 (a huge key turns every signature check into seconds
// of CPU).
func checkKey(cose []byte) error {
	key, err := webauthncose.ParsePublicKey(cose)
	if err != nil {
		return errors.New("the credential public key is not a COSE key")
	}
	if k, ok := key.(webauthncose.RSAPublicKeyData); ok {
		n := new(big.Int).SetBytes(k.Modulus)
		e := new(big.Int).SetBytes(k.Exponent)
		if n.BitLen() > 4096 || e.Cmp(big.NewInt(65537)) != 0 {
			return errors.New("RSA credential keys must be at most 4096 bits with the exponent 65537")
		}
	}
	return nil
}

// credentials are the user's enrolled WebAuthn credentials.
func (f *Factor) credentials(ctx context.Context, envID, userID string) ([]gowebauthn.Credential, error) {
	recs, err := f.Devices.ListDevices(ctx, envID, userID)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	var out []gowebauthn.Credential
	for _, r := range recs {
		d, err := mfa.ParseDevice(r.Data)
		if err != nil || (d.Type != mfa.Platform && d.Type != mfa.SecurityKey) {
			continue
		}
		if part, err := ReadPart(&d); err == nil {
			out = append(out, part.Credential)
		}
	}
	return out, nil
}

// Attempts: the environment's webauthn.failure (as it was when the
// ceremony began), then its cool-down.
func (f *Factor) Attempts(p factor.Pending, _ *mfa.Policy) factor.AttemptLimit {
	d, _ := decode(p)
	return factor.AttemptLimit{Subject: p.ID, Count: max(d.Limit, 1), CoolDown: time.Duration(d.CoolDown) * time.Second}
}

// Counted: at the limit the device is refused for the cool-down, after
// which the count starts again.
func (f *Factor) Counted(p factor.Pending, _ *mfa.Policy, attempt int, now time.Time) factor.Pending {
	d, _ := decode(p)
	d.Refusals = d.Refusals.Counted(attempt, max(d.Limit, 1), time.Duration(d.CoolDown)*time.Second, now)
	return with(p, d)
}

func (f *Factor) Usable(p factor.Pending, _ *mfa.Policy, now time.Time) bool {
	d, _ := decode(p)
	return d.Usable(now)
}

func (f *Factor) LockedOut(p factor.Pending, _ *mfa.Policy, _ time.Time) factor.Pending {
	d, _ := decode(p)
	d.Refusals = factor.Refusals{}
	return with(p, d)
}

// View is the pending device with the options for
// navigator.credentials.create({publicKey: ...}).
func (f *Factor) View(p factor.Pending, _ *mfa.Policy, _ string) map[string]any {
	v := map[string]any{"id": p.ID, "type": p.Type, "createdAt": p.CreatedAt}
	if p.Nickname != "" {
		v["nickname"] = p.Nickname
	}
	if d, err := decode(p); err == nil {
		v["publicKeyCredentialCreationOptions"] = d.Options
	}
	return v
}

// Activate verifies the attestation against the ceremony kept in the
// pending device.
func (f *Factor) Activate(ctx context.Context, a factor.Activate) (factor.Verdict, error) {
	if err := factor.CheckCeremonyProof(a.Proof); err != nil {
		return factor.Verdict{}, err
	}
	d, err := decode(a.Pending)
	if err != nil {
		return factor.Verdict{}, engine.AsError(err)
	}
	if a.Now.Before(d.LockedUntil) {
		return factor.Verdict{}, engine.TooSoon("Too many refused ceremonies; try again after the cool-down.", d.LockedUntil.Sub(a.Now))
	}
	code, msg, cred := f.judge(a, d)
	if code == "" {
		return f.enrolled(ctx, a, d, cred)
	}
	return f.refused(a, code, msg), nil
}

// judge runs the checks in the order a client can act on them, and the
// library's verification last; it returns a detail code when one fails.
func (f *Factor) judge(a factor.Activate, d data) (code, msg string, cred *gowebauthn.Credential) {
	raw, err := Attestation(a.Proof.Attestation)
	if err != nil {
		return InvalidAttestation, err.Error(), nil
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(raw)
	if err != nil {
		return InvalidAttestation, "is not a PublicKeyCredential of navigator.credentials.create(): " + protocolMessage(err), nil
	}
	cd := parsed.Response.CollectedClientData
	switch {
	case !a.Now.Before(d.Session.Expires):
		return ChallengeExpired, "the ceremony's time is over; create the device again for a new challenge", nil
	case !slices.Contains(d.Origins, cd.Origin):
		return OriginMismatch, fmt.Sprintf("was made on %q, which is not an origin of the relying party %s", cd.Origin, d.RPID), nil
	case a.Proof.Origin != "" && a.Proof.Origin != cd.Origin:
		return OriginMismatch, fmt.Sprintf("was made on %q, not on the origin %q the request names", cd.Origin, a.Proof.Origin), nil
	case !hmac.Equal([]byte(cd.Challenge), []byte(d.Session.Challenge)):
		return ChallengeMismatch, "answers another challenge than this device's", nil
	}
	if err := checkKey(parsed.Response.AttestationObject.AuthData.AttData.CredentialPublicKey); err != nil {
		return InvalidAttestation, err.Error(), nil
	}
	flags := parsed.Response.AttestationObject.AuthData.Flags
	if d.UserVerification == "required" && !flags.HasUserVerified() {
		return UserVerificationRequired, "the authenticator did not verify the user (PIN or biometrics), which the environment requires", nil
	}
	if len(d.AAGUIDs) > 0 {
		// An AAGUID is the authenticator's own claim: only an attestation
		// with a certificate (x5c) backs it. None and self attestation
		// cannot be told from software claiming any model.
		obj := parsed.Response.AttestationObject
		if _, certified := obj.AttStatement["x5c"]; obj.Format == "none" || !certified {
			return AuthenticatorNotAllowed, "webauthn.allowedAaguids needs an attestation with a certificate, and this one has none", nil
		}
		aaguid, err := uuid.FromBytes(obj.AuthData.AttData.AAGUID)
		if err != nil || !slices.Contains(d.AAGUIDs, aaguid.String()) {
			return AuthenticatorNotAllowed, "this authenticator model (AAGUID) is not among webauthn.allowedAaguids", nil
		}
	}
	wa, err := relyingPartyConfig(mfa.RelyingParty{ID: d.RPID, Name: d.RPID, Origins: d.Origins}, mfa.WebAuthn{Attestation: "none", Timeout: mfa.Duration{Duration: 5, TimeUnit: "MINUTES"}})
	if err != nil {
		return InvalidAttestation, err.Error(), nil
	}
	session := d.Session
	session.Expires = time.Time{} // checked above, on the injected clock
	c, err := wa.CreateCredential(user{handle: session.UserID}, session, parsed)
	if err != nil {
		return InvalidAttestation, "does not verify: " + protocolMessage(err), nil
	}
	return "", "", c
}

func protocolMessage(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		return pe.Details
	}
	return err.Error()
}

// Attestation is the attestation field as JSON: the seed's string holding
// the PublicKeyCredential's JSON, or the object itself.
func Attestation(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errors.New("must be the PublicKeyCredential as JSON, or a string of it")
		}
		raw = []byte(s)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errors.New("must be the PublicKeyCredential as JSON, or a string of it")
	}
	return raw, nil
}

// enrolled claims the credential id for this device across the
// environment, and returns the device to enroll.
func (f *Factor) enrolled(ctx context.Context, a factor.Activate, d data, c *gowebauthn.Credential) (factor.Verdict, error) {
	p := a.Pending
	ref := a.UserID + "\x00" + p.ID
	key := credentialKey(c.ID)
	created, err := f.Index.PutIndex(ctx, a.EnvID, store.IndexCredential, key, ref, a.Now.Add(credentialIndexLife))
	if err != nil {
		return factor.Verdict{}, engine.Unavailable(err)
	}
	if !created {
		owner, err := f.Index.GetIndex(ctx, a.EnvID, store.IndexCredential, key)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return factor.Verdict{}, engine.Unavailable(err)
		}
		if owner != ref { // not our own earlier try of this very activation
			return f.refused(a, CredentialExists, "this credential is registered already"), nil
		}
	}
	part := Part{EnvID: a.EnvID, RPID: d.RPID, Origins: d.Origins, UserHandle: d.Session.UserID, Credential: *c}
	raw, _ := json.Marshal(part)
	return factor.Verdict{OK: true, Device: &mfa.Device{ID: p.ID, Type: p.Type, Status: mfa.StatusActive, Nickname: p.Nickname,
		Factor: raw, CreatedAt: p.CreatedAt, UpdatedAt: a.Now}}, nil
}

var _ factor.Forgetter = (*Factor)(nil)

// Forget gives up a deleted device's claim on its credential id, so that
// the credential can be enrolled again.
func (f *Factor) Forget(ctx context.Context, envID, userID string, dev *mfa.Device) error {
	part, err := ReadPart(dev)
	if err != nil {
		return nil // nothing of ours to give up
	}
	return f.Index.DeleteIndex(ctx, envID, store.IndexCredential, credentialKey(part.Credential.ID), userID+"\x00"+dev.ID)
}

// credentialIndexLife: a credential's index entry outlives any device.
const credentialIndexLife = 100 * 365 * 24 * time.Hour

func credentialKey(id []byte) string {
	sum := sha256.Sum256(id)
	return hex.EncodeToString(sum[:20])
}

// refused is the 400 of a refused ceremony, counted.
func (f *Factor) refused(a factor.Activate, code, msg string) factor.Verdict {
	d, _ := decode(a.Pending)
	p := f.Counted(a.Pending, a.Policy, max(a.Attempt, d.Count+1), a.Now)
	after, _ := decode(p)
	remaining := max(d.Limit, 1) - after.Count
	v := factor.Verdict{Pending: p}
	if after.LockedUntil.After(a.Now) {
		v.Exhausted, v.CoolDownUntil, remaining = true, after.LockedUntil, 0
		msg += "; no attempts are left until " + after.LockedUntil.UTC().Format(time.RFC3339)
	}
	e := factor.Invalid("attestation", code, msg)
	e.Details[0].InnerError = map[string]any{"remainingAttempts": remaining}
	v.Refusal = e
	return v
}

// Part is the factor's part of a PLATFORM or SECURITY_KEY record: the
// credential as go-webauthn keeps it (id, public key, sign count, AAGUID,
// transports, backup flags, attestation format), its relying party and
// origins, and the user handle the credential was made for.
type Part struct {
	EnvID      string                `json:"env"`
	RPID       string                `json:"rpId"`
	Origins    []string              `json:"origins"`
	UserHandle []byte                `json:"userHandle"`
	Credential gowebauthn.Credential `json:"credential"`
}

// ReadPart decodes a WebAuthn device's part.
func ReadPart(dev *mfa.Device) (Part, error) {
	var p Part
	if err := json.Unmarshal(dev.Factor, &p); err != nil {
		return p, fmt.Errorf("webauthn: device %s: %w", dev.ID, err)
	}
	return p, nil
}

// DeviceAttempts: assertions are limited by the user's regulation and
// the environment's failure count (the policy has none of its own).
func (f *Factor) DeviceAttempts(dev *mfa.Device, _ *mfa.Policy) factor.AttemptLimit {
	return factor.AttemptLimit{Subject: dev.ID + "#assert", Count: 7, CoolDown: 2 * time.Minute}
}

// Assertion is what a front door verifies: the assertion the browser
// returned for a challenge the front door issued (base64url, as in the
// options it sent), at an origin.
type Assertion struct {
	Challenge string          `json:"challenge"`
	Origin    string          `json:"origin,omitempty"`
	Response  json.RawMessage `json:"assertion"`
}

// Verify checks an assertion (the proof: an Assertion as JSON) with the
// enrolled credential: the challenge the front door issued (whose single
// use is the front door's to enforce: an authenticator whose sign count
// stays 0 returns the same assertion for the same challenge), the origin
// and user verification of the relying party as configured now, the
// signature, and a sign count that went forward (one that did not flags a
// cloned authenticator, refused). The new sign count is saved by the
// registry with compare-and-set.
func (f *Factor) Verify(_ context.Context, dev *mfa.Device, _ *mfa.Policy, proof string, now time.Time) (factor.Checked, error) {
	part, err := ReadPart(dev)
	if err != nil {
		return factor.Checked{}, err
	}
	var as Assertion
	if err := json.Unmarshal([]byte(proof), &as); err != nil || as.Challenge == "" || len(as.Response) == 0 {
		return factor.Checked{}, nil
	}
	raw, err := Attestation(as.Response)
	if err != nil {
		return factor.Checked{}, nil
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		return factor.Checked{}, nil
	}
	if as.Origin != "" && parsed.Response.CollectedClientData.Origin != as.Origin {
		return factor.Checked{}, nil
	}
	env, ok := f.Environments[part.EnvID]
	if !ok {
		return factor.Checked{}, nil
	}
	rp, ok := env.WebAuthn.RelyingParty(part.RPID)
	if !ok || rp.ID != part.RPID {
		return factor.Checked{}, nil // the relying party is no longer configured
	}
	wa, err := relyingPartyConfig(rp, env.WebAuthn)
	if err != nil {
		return factor.Checked{}, err
	}
	uv := protocol.VerificationPreferred
	if env.WebAuthn.UserVerification == "required" {
		uv = protocol.VerificationRequired
	}
	session := gowebauthn.SessionData{Challenge: as.Challenge, RelyingPartyID: part.RPID, UserID: part.UserHandle,
		AllowedCredentialIDs: [][]byte{part.Credential.ID}, UserVerification: uv}
	cred, err := wa.ValidateLogin(user{handle: part.UserHandle, credentials: []gowebauthn.Credential{part.Credential}}, session, parsed)
	if err != nil {
		return factor.Checked{}, nil
	}
	if cred.Authenticator.CloneWarning {
		return factor.Checked{Replayed: true}, nil // a sign count that did not go forward: a clone, or a replay
	}
	part.Credential.Authenticator.SignCount = cred.Authenticator.SignCount
	part.Credential.Flags.BackupState = cred.Flags.BackupState
	dev.Factor, _ = json.Marshal(part)
	dev.UpdatedAt = now
	return factor.Checked{OK: true, Changed: true}, nil
}

// CredentialID is a credential id as the browser's options carry it.
func CredentialID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }
