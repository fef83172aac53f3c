package hal_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/fxamacker/cbor/v2"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/factor/webauthn"
	"github.com/enrollflow/enrollflow/mfa"
)

// The demo's relying party, as a browser on its page would present it.
var demoRP = virtualwebauthn.RelyingParty{Name: "enrollflow demo", ID: "localhost", Origin: "http://localhost:8080"}

// key is one authenticator with one credential: what a test's "user"
// holds.
type key struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newKey() *key {
	// virtualwebauthn encodes the EC coordinates without their leading
	// zero bytes, which a verifier rightly refuses: keep drawing keys until
	// both are a full 32 bytes (77 bytes of COSE key).
	for {
		cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		if len(cred.Key.AttestationData()) == 77 {
			return &key{auth: virtualwebauthn.NewAuthenticator(), cred: cred}
		}
	}
}

// creationOptions are the state's options, as the browser API gets them.
func creationOptions(t *testing.T, r *resp) *virtualwebauthn.AttestationOptions {
	t.Helper()
	mustState(t, r, "ACTIVATION_REQUIRED")
	raw, _ := json.Marshal(at(r.Body, "device", "publicKeyCredentialCreationOptions"))
	opts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
	if err != nil {
		t.Fatalf("creation options %s: %v", raw, err)
	}
	return opts
}

// attest is the PublicKeyCredential navigator.credentials.create() would
// return, in the attestation format fmt ("packed" self attestation, or
// "none").
func (k *key) attest(t *testing.T, rp virtualwebauthn.RelyingParty, opts *virtualwebauthn.AttestationOptions, format string) string {
	t.Helper()
	resp := virtualwebauthn.CreateAttestationResponse(rp, k.auth, k.cred, *opts)
	if format == "packed" {
		return resp
	}
	var pkc map[string]any
	_ = json.Unmarshal([]byte(resp), &pkc)
	response := pkc["response"].(map[string]any)
	raw, _ := base64.RawURLEncoding.DecodeString(response["attestationObject"].(string))
	var obj map[string]any
	if err := cbor.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	obj["fmt"], obj["attStmt"] = "none", map[string]any{}
	re, _ := cbor.Marshal(obj)
	response["attestationObject"] = base64.RawURLEncoding.EncodeToString(re)
	out, _ := json.Marshal(pkc)
	return string(out)
}

// activateWith posts device.activate with the attestation as the seed has
// it: the PublicKeyCredential's JSON in a string.
func (n *node) activateWith(id, attestation, origin string) *resp {
	n.t.Helper()
	body, _ := json.Marshal(map[string]any{"attestation": attestation, "origin": origin})
	return n.act(id, ctActivate, string(body))
}

// assertion is what a front door would verify for k's credential.
func (k *key) assertion(rp virtualwebauthn.RelyingParty, challenge []byte) string {
	resp := virtualwebauthn.CreateAssertionResponse(rp, k.auth, k.cred, virtualwebauthn.AssertionOptions{Challenge: challenge,
		AllowCredentials: []string{base64.RawURLEncoding.EncodeToString(k.cred.ID)}, RelyingPartyID: rp.ID})
	proof, _ := json.Marshal(webauthn.Assertion{Challenge: base64.RawURLEncoding.EncodeToString(challenge), Origin: rp.Origin, Response: json.RawMessage(resp)})
	return string(proof)
}

// TestWebAuthnEnrollment: PLATFORM (packed) and SECURITY_KEY (none)
// enrolled end to end with a virtual authenticator; the second ceremony
// excludes the first credential; the enrolled credential then verifies
// assertions, once per sign count.
func TestWebAuthnEnrollment(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		first := newKey()
		id := n.start("passkey-user")
		r := n.act(id, ctCreate, `{"type":"PLATFORM","nickname":"Laptop"}`)
		mustLinks(t, r, "device.activate", "device.delete")
		opts := creationOptions(t, r)
		if got := str(r.Body, "device", "publicKeyCredentialCreationOptions", "authenticatorSelection", "authenticatorAttachment"); got != "platform" {
			t.Errorf("PLATFORM attachment = %q", got)
		}
		if opts.RelyingPartyID != "localhost" || opts.UserID == "" || strings.Contains(opts.UserID, "passkey-user") {
			t.Errorf("options rp %q user %q: want the localhost RP and an opaque handle", opts.RelyingPartyID, opts.UserID)
		}
		done := n.activateWith(id, first.attest(t, demoRP, opts, "packed"), demoRP.Origin)
		mustState(t, done, "COMPLETED")
		devID := str(done.Body, "steps", "enroll", "outputs", "device", "id")
		if str(done.Body, "steps", "enroll", "outputs", "device", "type") != "PLATFORM" {
			t.Fatalf("outputs: %s", done)
		}
		ent, err := n.Registry.Get(context.Background(), "demo", "passkey-user", devID)
		if err != nil || ent.Type != mfa.Platform || ent.Status != mfa.StatusActive || ent.Nickname != "Laptop" {
			t.Fatalf("registry: %+v, %v", ent, err)
		}
		part, err := webauthn.ReadPart(&ent.Device)
		if err != nil || string(part.Credential.ID) != string(first.cred.ID) || part.Credential.AttestationFormat != "packed" || len(part.Credential.PublicKey) == 0 {
			t.Fatalf("credential: %+v, %v", part.Credential, err)
		}

		// The same user's second ceremony: a security key, attestation
		// none; the first credential is excluded.
		id2 := n.start("passkey-user")
		r = n.act(id2, ctCreate, `{"type":"SECURITY_KEY","rp":{"id":"localhost","name":"Demo"}}`)
		opts2 := creationOptions(t, r)
		if got := str(r.Body, "device", "publicKeyCredentialCreationOptions", "authenticatorSelection", "authenticatorAttachment"); got != "cross-platform" {
			t.Errorf("SECURITY_KEY attachment = %q", got)
		}
		if len(opts2.ExcludeCredentials) != 1 || opts2.ExcludeCredentials[0] != base64.RawURLEncoding.EncodeToString(first.cred.ID) {
			t.Errorf("excludeCredentials = %v, want the first credential", opts2.ExcludeCredentials)
		}
		if opts2.UserID != opts.UserID {
			t.Errorf("the user handle changed between ceremonies")
		}
		second := newKey()
		mustState(t, n.activateWith(id2, second.attest(t, demoRP, opts2, "none"), demoRP.Origin), "COMPLETED")

		// Assertions: right, replayed (the sign count did not go
		// forward), a wrong signature, a sign count going backwards.
		first.cred.Counter = 5
		challenge := []byte("a-challenge-the-front-door-issued")
		v, err := n.Registry.Verify(context.Background(), n.Env, "passkey-user", devID, first.assertion(demoRP, challenge))
		if err != nil || !v.OK {
			t.Fatalf("a right assertion: %+v, %v", v, err)
		}
		if v, _ := n.Registry.Verify(context.Background(), n.Env, "passkey-user", devID, first.assertion(demoRP, challenge)); v.OK {
			t.Errorf("an assertion with the same sign count was accepted")
		}
		first.cred.Counter = 3
		if v, _ := n.Registry.Verify(context.Background(), n.Env, "passkey-user", devID, first.assertion(demoRP, challenge)); v.OK {
			t.Errorf("a sign count going backwards was accepted")
		}
		other := newKey()
		other.cred.ID, other.cred.Counter = first.cred.ID, 9
		if v, _ := n.Registry.Verify(context.Background(), n.Env, "passkey-user", devID, other.assertion(demoRP, challenge)); v.OK {
			t.Errorf("an assertion signed by another key was accepted")
		}
		first.cred.Counter = 6
		if v, err := n.Registry.Verify(context.Background(), n.Env, "passkey-user", devID, first.assertion(demoRP, challenge)); err != nil || !v.OK {
			t.Errorf("the next right assertion: %+v, %v", v, err)
		}
	})
}

// startWithCompatibility starts the demo flow with webauthn.compatibility.
func (n *node) startWithCompatibility(user, compat string) *resp {
	n.t.Helper()
	body, _ := json.Marshal(map[string]any{"flow": map[string]any{"id": demoFlow},
		"inputs": map[string]any{"user": map[string]any{"id": user}, "webauthn": map[string]any{"compatibility": compat}}})
	r := n.admin(http.MethodPost, execPath, string(body))
	mustStatus(n.t, r, http.StatusCreated)
	return r
}

// TestWebAuthnRefusals: every way a ceremony is refused has its detail
// code, is counted, and changes nothing else.
func TestWebAuthnRefusals(t *testing.T) {
	strict := demoConfig(func(e *config.Environment) {
		e.WebAuthn.UserVerification = "required"
		e.WebAuthn.Attestation = "direct"
		e.WebAuthn.AllowedAAGUIDs = []string{"ee882879-721c-4913-9775-3dfcce97072a"}
		e.WebAuthn.Failure = mfa.Failure{Count: 2, CoolDown: mfa.Duration{Duration: 2, TimeUnit: "MINUTES"}}
	})
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		refused := func(t *testing.T, n *node, id, attestation, origin, code string) {
			t.Helper()
			r := n.activateWith(id, attestation, origin)
			mustError(t, r, http.StatusBadRequest, "INVALID_DATA", detail{"attestation", code})
		}
		ceremony := func(t *testing.T, n *node, user, typ string) (string, *virtualwebauthn.AttestationOptions) {
			t.Helper()
			id := n.start(user)
			return id, creationOptions(t, n.act(id, ctCreate, `{"type":"`+typ+`"}`))
		}

		t.Run("origin", func(t *testing.T) {
			id, opts := ceremony(t, n, "w-origin", "PLATFORM")
			evil := demoRP
			evil.Origin = "http://evil.localhost:8080"
			refused(t, n, id, newKey().attest(t, evil, opts, "packed"), evil.Origin, "ORIGIN_MISMATCH")
			refused(t, n, id, newKey().attest(t, demoRP, opts, "packed"), "http://127.0.0.1:8080", "ORIGIN_MISMATCH")
		})
		t.Run("challenge", func(t *testing.T) {
			id, opts := ceremony(t, n, "w-challenge", "PLATFORM")
			wrong := *opts
			wrong.Challenge = []byte("not-the-challenge-of-this-device!")
			refused(t, n, id, newKey().attest(t, demoRP, &wrong, "packed"), demoRP.Origin, "CHALLENGE_MISMATCH")
		})
		t.Run("reused challenge", func(t *testing.T) {
			id, opts := ceremony(t, n, "w-reuse", "PLATFORM")
			k := newKey()
			used := k.attest(t, demoRP, opts, "packed")
			mustState(t, n.activateWith(id, used, demoRP.Origin), "COMPLETED")
			again, _ := ceremony(t, n, "w-reuse", "PLATFORM")
			k2 := newKey()
			refused(t, n, again, k2.attest(t, demoRP, opts, "packed"), demoRP.Origin, "CHALLENGE_MISMATCH")
		})
		t.Run("expired", func(t *testing.T) {
			id, opts := ceremony(t, n, "w-late", "SECURITY_KEY")
			n.Clock.Advance(5*time.Minute + time.Second)
			refused(t, n, id, newKey().attest(t, demoRP, opts, "packed"), demoRP.Origin, "CHALLENGE_EXPIRED")
		})
		t.Run("malformed", func(t *testing.T) {
			id, _ := ceremony(t, n, "w-junk", "PLATFORM")
			refused(t, n, id, `{"id":"x","type":"public-key","response":{}}`, demoRP.Origin, "INVALID_ATTESTATION")
			refused(t, n, id, `not json`, demoRP.Origin, "INVALID_ATTESTATION")
			n.unchanged(id, func() {
				mustError(t, n.act(id, ctActivate, `{"otp":"123456"}`), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "INVALID_VALUE"})
				mustError(t, n.act(id, ctActivate, `{}`), http.StatusBadRequest, "INVALID_DATA", detail{"attestation", "REQUIRED_VALUE"})
			})
		})
		t.Run("an RSA key", func(t *testing.T) {
			id, opts := ceremony(t, n, "w-rsa", "SECURITY_KEY")
			k := &key{auth: virtualwebauthn.NewAuthenticator(), cred: virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeRSA)}
			mustState(t, n.activateWith(id, k.attest(t, demoRP, opts, "packed"), demoRP.Origin), "COMPLETED")
		})
		t.Run("the attestation as an object", func(t *testing.T) {
			id, opts := ceremony(t, n, "w-object", "PLATFORM")
			att := newKey().attest(t, demoRP, opts, "none")
			mustState(t, n.act(id, ctActivate, `{"attestation":`+att+`,"origin":"`+demoRP.Origin+`"}`), "COMPLETED")
		})
		t.Run("duplicate credential", func(t *testing.T) {
			k := newKey()
			id, opts := ceremony(t, n, "w-dup-a", "PLATFORM")
			mustState(t, n.activateWith(id, k.attest(t, demoRP, opts, "packed"), demoRP.Origin), "COMPLETED")
			other, opts2 := ceremony(t, n, "w-dup-b", "PLATFORM")
			refused(t, n, other, k.attest(t, demoRP, opts2, "packed"), demoRP.Origin, "CREDENTIAL_EXISTS")
			// Once the first user's device is deleted, its credential id is
			// free again.
			l := n.admin(http.MethodGet, "/environments/demo/users/w-dup-a/devices", "")
			devID := str(list(l.Body, "_embedded", "devices")[0], "id")
			mustStatus(t, n.admin(http.MethodDelete, "/environments/demo/users/w-dup-a/devices/"+devID, ""), http.StatusNoContent)
			again, opts3 := ceremony(t, n, "w-dup-b", "PLATFORM")
			mustState(t, n.activateWith(again, k.attest(t, demoRP, opts3, "packed"), demoRP.Origin), "COMPLETED")
		})
		t.Run("duplicate credential, racing on two nodes", func(t *testing.T) {
			shared := n.Store // memory: one store; Redis: another client of the same server
			if b.redis != nil {
				shared = b.Open(n.Clock)
			}
			peer := &node{t: t, API: newNode(t, b, apptest.Options{Store: shared, Clock: n.Clock}).API}
			k := newKey()
			idA, optsA := ceremony(t, n, "w-race-a", "SECURITY_KEY")
			idB, optsB := ceremony(t, n, "w-race-b", "SECURITY_KEY")
			attA, attB := k.attest(t, demoRP, optsA, "packed"), k.attest(t, demoRP, optsB, "packed")
			var wg sync.WaitGroup
			results := make([]*resp, 2)
			gate := newBarrier(2)
			for i, run := range []func() *resp{
				func() *resp { return n.activateWith(idA, attA, demoRP.Origin) },
				func() *resp { return peer.activateWith(idB, attB, demoRP.Origin) },
			} {
				wg.Add(1)
				go func() { defer wg.Done(); gate.wait(); results[i] = run() }()
			}
			gate.release()
			wg.Wait()
			won := 0
			for _, r := range results {
				if r.Status == http.StatusOK {
					won++
				} else if r.Status != http.StatusBadRequest || str(list(r.Body, "details")[0], "code") != "CREDENTIAL_EXISTS" {
					t.Errorf("the loser answered %s", r)
				}
			}
			if won != 1 {
				t.Fatalf("%d of 2 racing enrollments of one credential won", won)
			}
		})
		t.Run("compatibility", func(t *testing.T) {
			onlyKeys := n.startWithCompatibility("w-compat", "SECURITY_KEY_ONLY")
			if types := list(onlyKeys.Body, "allowedtypes"); len(types) == 0 || strings.Contains(strings.Join(anyStrings(types), ","), "PLATFORM") {
				t.Errorf("SECURITY_KEY_ONLY offers %v", types)
			}
			id := str(onlyKeys.Body, "id")
			n.unchanged(id, func() {
				mustError(t, n.act(id, ctCreate, `{"type":"PLATFORM"}`), http.StatusBadRequest, "INVALID_DATA", detail{"webauthn.compatibility", "WEBAUTHN_NOT_ALLOWED"})
			})
			mustState(t, n.act(id, ctCreate, `{"type":"SECURITY_KEY"}`), "ACTIVATION_REQUIRED")
			none := n.startWithCompatibility("w-compat-2", "NONE")
			id = str(none.Body, "id")
			for _, typ := range []string{"PLATFORM", "SECURITY_KEY"} {
				mustError(t, n.act(id, ctCreate, `{"type":"`+typ+`"}`), http.StatusBadRequest, "INVALID_DATA", detail{"webauthn.compatibility", "WEBAUTHN_NOT_ALLOWED"})
			}
			if types := strings.Join(anyStrings(list(none.Body, "allowedtypes")), ","); strings.Contains(types, "PLATFORM") || strings.Contains(types, "SECURITY_KEY") {
				t.Errorf("NONE offers %s", types)
			}
		})

		s := newNode(t, b, apptest.Options{Config: strict})
		t.Run("user verification required", func(t *testing.T) {
			id, opts := ceremony(t, s, "w-uv", "PLATFORM")
			k := newKey()
			k.auth.Options.UserNotVerified = true
			refused(t, s, id, k.attest(t, demoRP, opts, "packed"), demoRP.Origin, "USER_VERIFICATION_REQUIRED")
		})
		t.Run("authenticator not allowed, then the cool-down", func(t *testing.T) {
			id, opts := ceremony(t, s, "w-aaguid", "SECURITY_KEY")
			refused(t, s, id, newKey().attest(t, demoRP, opts, "packed"), demoRP.Origin, "AUTHENTICATOR_NOT_ALLOWED")
			// The allowed model's AAGUID, claimed without a certificate:
			// anyone's claim, refused.
			claimed := newKey()
			copy(claimed.auth.Aaguid[:], []byte{0xee, 0x88, 0x28, 0x79, 0x72, 0x1c, 0x49, 0x13, 0x97, 0x75, 0x3d, 0xfc, 0xce, 0x97, 0x07, 0x2a})
			r := s.activateWith(id, claimed.attest(t, demoRP, opts, "packed"), demoRP.Origin)
			mustError(t, r, http.StatusBadRequest, "INVALID_DATA", detail{"attestation", "AUTHENTICATOR_NOT_ALLOWED"})
			if num(list(r.Body, "details")[0], "innerError", "remainingAttempts") != 0 {
				t.Errorf("after the second of two failures: %s", r)
			}
			mustLinks(t, s.get(id), "device.delete")
			mustError(t, s.activateWith(id, claimed.attest(t, demoRP, opts, "none"), demoRP.Origin), http.StatusTooManyRequests, "REQUEST_LIMITED")
			s.Clock.Advance(2*time.Minute + time.Second)
			r = s.activateWith(id, claimed.attest(t, demoRP, opts, "none"), demoRP.Origin)
			mustError(t, r, http.StatusBadRequest, "INVALID_DATA", detail{"attestation", "AUTHENTICATOR_NOT_ALLOWED"})
			if num(list(r.Body, "details")[0], "innerError", "remainingAttempts") != 1 {
				t.Errorf("after the cool-down the count starts again: %s", r)
			}
		})
	})
}

// TestWebAuthnAssertionUserVerification: where the environment requires
// user verification, an assertion without it is refused, as the
// enrollment was.
func TestWebAuthnAssertionUserVerification(t *testing.T) {
	cfg := demoConfig(func(e *config.Environment) { e.WebAuthn.UserVerification = "required" })
	n := newNode(t, &backend{t: t, name: "memory"}, apptest.Options{Config: cfg})
	k := newKey()
	id := n.start("uv-user")
	done := n.activateWith(id, k.attest(t, demoRP, creationOptions(t, n.act(id, ctCreate, `{"type":"PLATFORM"}`)), "packed"), demoRP.Origin)
	mustState(t, done, "COMPLETED")
	devID := str(done.Body, "steps", "enroll", "outputs", "device", "id")
	k.cred.Counter = 1
	k.auth.Options.UserNotVerified = true
	if v, _ := n.Registry.Verify(context.Background(), n.Env, "uv-user", devID, k.assertion(demoRP, []byte("the-first-challenge-of-the-door"))); v.OK {
		t.Fatal("an assertion without user verification was accepted")
	}
	k.cred.Counter, k.auth.Options.UserNotVerified = 2, false
	if v, err := n.Registry.Verify(context.Background(), n.Env, "uv-user", devID, k.assertion(demoRP, []byte("the-second-challenge-of-the-door"))); err != nil || !v.OK {
		t.Fatalf("a verified assertion: %+v, %v", v, err)
	}
}

func anyStrings(l []any) []string {
	out := make([]string, 0, len(l))
	for _, v := range l {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}
