package webauthn_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/webauthn"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
)

// pending makes a real ceremony for the localhost relying party.
func pending(t testing.TB, f *webauthn.Factor, env *engine.Environment, now time.Time) (factor.Pending, *virtualwebauthn.AttestationOptions) {
	a := &actions.CreateDevice{Type: "SECURITY_KEY"}
	p, _, err := f.Begin(context.Background(), factor.Begin{Env: env, EnvID: env.ID, Policy: env.DefaultPolicy(), Action: a,
		User: factor.User{ID: "u1"}, ID: store.NewID(), Now: now}, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(f.View(p, nil, "")["publicKeyCredentialCreationOptions"])
	opts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return p, opts
}

func testEnv(t testing.TB) *engine.Environment {
	pol := mfa.DefaultPolicy("p")
	pol.SecurityKey.Enabled = true
	env, err := engine.NewEnvironment("env1", "0123456789abcdef0123", []mfa.Policy{pol}, mfa.Settings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.WithWebAuthn(mfa.WebAuthn{RelyingParties: []mfa.RelyingParty{{ID: "localhost", Name: "t", Origins: []string{"http://localhost:8080"}}}}); err != nil {
		t.Fatal(err)
	}
	return env
}

// FuzzAttestation: whatever the client sends as the attestation, the
// factor answers a refusal (or a 400), never panics, and accepts nothing
// but a real one.
func FuzzAttestation(f *testing.F) {
	st := memory.New(nil)
	fac := &webauthn.Factor{UserHandleKey: []byte("k"), Devices: st, Index: st}
	env := testEnv(f)
	now := time.Now()
	p, opts := pending(f, fac, env, now)
	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "t", Origin: "http://localhost:8080"}
	cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
	for len(cred.Key.AttestationData()) != 77 { // coordinates of a full 32 bytes
		cred = virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
	}
	good := virtualwebauthn.CreateAttestationResponse(rp, virtualwebauthn.NewAuthenticator(), cred, *opts)
	f.Add([]byte(good))
	quoted, _ := json.Marshal(good)
	f.Add(quoted)
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"attestationObject":"oA","clientDataJSON":"e30"}}`))
	f.Add([]byte(`"{}"`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // the action's strict decoder refuses it before the factor
		}
		v, err := fac.Activate(context.Background(), factor.Activate{EnvID: env.ID, UserID: "u1", Policy: env.DefaultPolicy(), Pending: p,
			Proof: &actions.ActivateDevice{Attestation: raw, Origin: rp.Origin}, Now: now, Attempt: 1})
		if err != nil {
			return
		}
		if !v.OK && v.Refusal == nil {
			t.Fatalf("neither accepted nor refused: %+v", v)
		}
		if v.OK {
			// Only the authenticator's credential, however re-encoded.
			part, err := webauthn.ReadPart(v.Device)
			if err != nil || string(part.Credential.ID) != string(cred.ID) || string(part.Credential.PublicKey) != string(cred.Key.AttestationData()) {
				t.Fatalf("accepted a credential that is not the authenticator's: %s", raw)
			}
		}
	})
}
