package totp_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/factortest"
	"github.com/enrollflow/enrollflow/factor/totp"
	"github.com/enrollflow/enrollflow/mfa"
)

func TestConformance(t *testing.T) {
	sealer, err := mfa.NewSealer(bytes.Repeat([]byte{2}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &totp.Factor{Sealer: sealer}
	policy := mfa.DefaultPolicy("p")
	factortest.Run(t, factortest.Case{
		Enroller: f,
		Action:   actions.CreateDevice{Type: "TOTP"},
		Wrong:    "000000",
		Proof: func(t *testing.T, p factor.Pending, now time.Time) string {
			secret, _ := f.View(p, &policy, "")["secret"].(string)
			c, err := mfa.TOTPCode(secret, now)
			if err != nil || c == "000000" {
				t.Skipf("no usable code (%q, %v)", c, err)
			}
			return c
		},
	})
}

// TestQRCode: the pending device's QR code is a PNG of its otpauth URI.
func TestQRCode(t *testing.T) {
	sealer, _ := mfa.NewSealer(bytes.Repeat([]byte{2}, 32))
	f := &totp.Factor{Sealer: sealer}
	policy := mfa.DefaultPolicy("p")
	settings := mfa.Settings{}
	p, _, err := f.Begin(t.Context(), factor.Begin{Policy: &policy, Settings: &settings, User: factor.User{ID: "u"},
		Action: &actions.CreateDevice{Type: "TOTP"}, ID: "d1", Now: time.Now()}, "")
	if err != nil {
		t.Fatal(err)
	}
	ct, body, err := f.Resource(p, totp.QRCodeResource)
	if err != nil || ct != "image/png" || !bytes.HasPrefix(body, []byte("\x89PNG")) {
		t.Fatalf("QR code: %q, %d bytes, %v", ct, len(body), err)
	}
	if _, _, err := f.Resource(p, "other.png"); err == nil {
		t.Fatal("an unknown resource was served")
	}
}
