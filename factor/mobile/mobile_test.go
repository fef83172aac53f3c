package mobile_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/mobile"
	"github.com/enrollflow/enrollflow/factor/mobile/phone"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
)

type fixture struct {
	f      *mobile.Factor
	st     store.Store
	env    *engine.Environment
	policy *mfa.Policy
	now    time.Time
}

func newFixture(t *testing.T, st store.Store) *fixture {
	t.Helper()
	sealer, err := mfa.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	app := mfa.Application{ID: "app", Name: "App"}
	strict := mfa.Application{ID: "strict", Name: "Strict"}
	strict.Push.Enabled, strict.PushTokenRequired = true, true
	pol := mfa.DefaultPolicy("p")
	pol.Mobile.Enabled, pol.Mobile.Applications = true, []string{"app", "strict"}
	env, err := engine.NewEnvironment("env1", "0123456789abcdef0123", []mfa.Policy{pol}, mfa.Settings{}, []mfa.Application{app, strict})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{f: &mobile.Factor{Sealer: sealer, KeyHash: []byte("pairing-key-hmac"), Applications: mobile.NewApplications(st, -1), Index: st},
		st: st, env: env, policy: env.DefaultPolicy(), now: time.Now().UTC().Truncate(time.Second)}
}

func (x *fixture) begin(t *testing.T, app string) factor.Pending {
	t.Helper()
	a := &actions.CreateDevice{Type: "MOBILE", Application: &struct {
		ID string `json:"id"`
	}{ID: app}}
	b := factor.Begin{Env: x.env, EnvID: "env1", Settings: &x.env.MFASettings, Policy: x.policy, Action: a, ID: store.NewID(),
		ExecutionID: "exec-" + app, BaseURL: "https://ef.test", Now: x.now}
	if _, err := x.f.Target(b); err != nil {
		t.Fatal(err)
	}
	p, send, err := x.f.Begin(context.Background(), b, "")
	if err != nil || send != nil {
		t.Fatalf("Begin: %v (send %v)", err, send != nil)
	}
	return p
}

func (x *fixture) code(t *testing.T, p factor.Pending) string {
	t.Helper()
	v := x.f.PairingView(p, "https://ef.test/env1/flowExecutions/e")
	_, env, code, err := mobile.ParsePairingURI(v["uri"].(string))
	if err != nil || env != "env1" || code != v["code"] {
		t.Fatalf("pairing view %v: %v", v, err)
	}
	return code
}

// collidingIndex occupies, before the first put, the very key the factor
// is about to index, as a live key of another user would.
type collidingIndex struct {
	store.Store
	collided bool
}

func (c *collidingIndex) PutIndex(ctx context.Context, envID string, name store.IndexName, key, value string, exp time.Time) (bool, error) {
	if !c.collided {
		c.collided = true
		if _, err := c.Store.PutIndex(ctx, envID, name, key, "someone-elses-execution", exp); err != nil {
			return false, err
		}
	}
	return c.Store.PutIndex(ctx, envID, name, key, value, exp)
}

// TestKeyCollisionMakesAnotherKey: a key whose hash is indexed already is
// never handed out; the factor makes another, and the first entry keeps
// pointing where it did.
func TestKeyCollisionMakesAnotherKey(t *testing.T) {
	mem := memory.New(nil)
	ci := &collidingIndex{Store: mem}
	x := newFixture(t, mem)
	x.f.Index = ci
	p := x.begin(t, "app")
	hash := x.f.PairingKey(p).Hash
	got, err := mem.GetIndex(context.Background(), "env1", store.IndexPairingKey, hash)
	if err != nil || got != "exec-app" {
		t.Fatalf("the pending key's index entry = %q, %v; want exec-app", got, err)
	}
	if !ci.collided {
		t.Fatal("the collision was not exercised")
	}
}

func TestPairingKeyFormats(t *testing.T) {
	for i := 0; i < 200; i++ {
		n, _ := mobile.NewPairingKey(mfa.PairingKeyNumeric)
		a, _ := mobile.NewPairingKey(mfa.PairingKeyAlphanumeric)
		if len(n) != 12 || strings.Trim(n, "0123456789") != "" || !mobile.ValidKeyShape(n) {
			t.Fatalf("numeric key %q", n)
		}
		if len(a) != 16 || strings.Trim(a, mfa.PairingKeyAlphabet) != "" || !mobile.ValidKeyShape(a) {
			t.Fatalf("alphanumeric key %q", a)
		}
	}
	if strings.ContainsAny(mfa.PairingKeyAlphabet, "0O1IL2Z5S8BUV") {
		t.Fatal("the alphabet has look-alike characters")
	}
	if mobile.NormalizeKey(" 1234-5678 9012 ") != "123456789012" || mobile.ValidKeyShape("12345678901") {
		t.Fatal("normalization or shape check is wrong")
	}
}

func (x *fixture) pair(t *testing.T, p factor.Pending, code, app string, dev actions.PairingDevice, k *phone.Keys, at time.Time) factor.PairVerdict {
	t.Helper()
	v, err := x.f.Pair(context.Background(), factor.Pair{Env: x.env, Policy: x.policy, Pending: p, Now: at,
		Pairing: &actions.Pairing{KeyHash: x.f.Hash("env1", code), ApplicationID: app, Device: dev, PublicKey: k.PublicJWK(), Seed: mobile.NewSeed()}})
	if err != nil {
		t.Fatalf("Pair: %v", err)
	}
	return v
}

// TestPairVerdicts: every refusal has its code; a pairing judged right is a
// device with the public key, whose offline passcodes verify once.
func TestPairVerdicts(t *testing.T) {
	x := newFixture(t, memory.New(nil))
	k, _ := phone.NewKeys()
	p := x.begin(t, "app")
	code := x.code(t, p)
	for _, tc := range []struct {
		name, app string
		at        time.Time
		want      string
	}{
		{"expired", "app", x.now.Add(10 * time.Minute), factor.PairingKeyExpired},
		{"another application", "strict", x.now, factor.ApplicationMismatch},
	} {
		if v := x.pair(t, p, code, tc.app, actions.PairingDevice{}, k, tc.at); v.Failure == nil || v.Failure.Code != tc.want {
			t.Errorf("%s: %+v, want %s", tc.name, v, tc.want)
		}
	}
	strict := x.begin(t, "strict")
	if v := x.pair(t, strict, x.code(t, strict), "strict", actions.PairingDevice{}, k, x.now); v.Failure == nil || v.Failure.Code != factor.PushTokenRequired {
		t.Errorf("no push token: %+v", v)
	}
	// An application the policy no longer allows pairs no more phones.
	x.policy.Mobile.Applications = []string{"app"}
	if v := x.pair(t, strict, x.code(t, strict), "strict", actions.PairingDevice{PushToken: "t"}, k, x.now); v.Failure == nil || v.Failure.Code != factor.ApplicationMismatch {
		t.Errorf("disallowed application: %+v", v)
	}

	v := x.pair(t, p, code, "app", actions.PairingDevice{Name: "Pixel", PushToken: "tok"}, k, x.now.Add(time.Minute))
	if v.Failure != nil || v.Device == nil || v.Device.Type != mfa.Mobile || v.Device.Nickname != "Pixel" {
		t.Fatalf("right pairing: %+v", v)
	}
	part, err := mobile.ReadPart(v.Device)
	if err != nil || part.PushToken != "tok" || part.Application != "app" {
		t.Fatalf("part %+v, %v", part, err)
	}
	if strings.Contains(string(v.Device.Factor), `"d"`) {
		t.Fatal("the record holds a private key")
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(part.PublicKey, &jwk); err != nil || !jwk.IsPublic() {
		t.Fatalf("stored key %s: %v", part.PublicKey, err)
	}
}

// TestParsePublicKey: only the public half of a P-256 key.
func TestParsePublicKey(t *testing.T) {
	k, _ := phone.NewKeys()
	if _, err := mobile.ParsePublicKey(k.PublicJWK()); err != nil {
		t.Fatalf("a P-256 public key: %v", err)
	}
	priv, _ := json.Marshal(k.PrivateKey)
	for name, raw := range map[string]string{
		"private":   string(priv),
		"symmetric": `{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAA"}`,
		"P-384":     `{"kty":"EC","crv":"P-384","x":"iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7","y":"iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7"}`,
		"empty":     ``,
		"junk":      `{"kty":"EC"}`,
	} {
		if _, err := mobile.ParsePublicKey([]byte(raw)); err == nil {
			t.Errorf("%s key accepted", name)
		}
	}
}

// TestSignedRequests: only ES256 JWS with the device's key, bound to the
// method, path and time.
func TestSignedRequests(t *testing.T) {
	k, _ := phone.NewKeys()
	k.DeviceID, k.UserID = "dev1", "u1"
	now := time.Now()
	jws, err := k.Sign("PUT", "/env1/mobile/devices/dev1/pushToken", now, map[string]any{"pushToken": "t"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := mobile.ParseSigned(jws)
	if err != nil || s.DeviceID != "dev1" {
		t.Fatalf("ParseSigned: %+v, %v", s, err)
	}
	if c, err := s.Verify(k.PublicJWK(), "PUT", "/env1/mobile/devices/dev1/pushToken", now); err != nil || c.Subject != "u1" || *c.PushToken != "t" {
		t.Fatalf("Verify: %+v, %v", c, err)
	}
	other, _ := phone.NewKeys()
	for name, check := range map[string]func() error{
		"another key": func() error {
			_, err := s.Verify(other.PublicJWK(), "PUT", "/env1/mobile/devices/dev1/pushToken", now)
			return err
		},
		"another path": func() error {
			_, err := s.Verify(k.PublicJWK(), "PUT", "/env1/mobile/devices/dev2/pushToken", now)
			return err
		},
		"another verb": func() error {
			_, err := s.Verify(k.PublicJWK(), "POST", "/env1/mobile/devices/dev1/pushToken", now)
			return err
		},
		"too late": func() error {
			_, err := s.Verify(k.PublicJWK(), "PUT", "/env1/mobile/devices/dev1/pushToken", now.Add(2*time.Minute))
			return err
		},
		"too early": func() error {
			_, err := s.Verify(k.PublicJWK(), "PUT", "/env1/mobile/devices/dev1/pushToken", now.Add(-2*time.Minute))
			return err
		},
	} {
		if check() == nil {
			t.Errorf("%s: verified", name)
		}
	}
	// HS256 (with the public key as the secret, the classic confusion)
	// and alg none are not parsed at all.
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(k.PublicJWK())},
		(&jose.SignerOptions{}).WithType(mobile.SignedRequestType).WithHeader("kid", "dev1"))
	obj, _ := hs.Sign([]byte(`{"sub":"u1","htm":"PUT","htu":"/env1/mobile/devices/dev1/pushToken","iat":1,"jti":"0123456789abcdef"}`))
	compact, _ := obj.CompactSerialize()
	if _, err := mobile.ParseSigned(compact); err == nil {
		t.Error("an HS256 JWS was parsed")
	}
	parts := strings.Split(jws, ".")
	if _, err := mobile.ParseSigned("eyJhbGciOiJub25lIiwia2lkIjoiZGV2MSIsInR5cCI6ImVucm9sbGZsb3ctZGV2aWNlK2p3dCJ9." + parts[1] + "."); err == nil {
		t.Error("an alg none JWS was parsed")
	}
}
