package mfa

import (
	"strings"
	"testing"
)

func TestWebAuthnValidation(t *testing.T) {
	valid := func() WebAuthn {
		w := WebAuthn{RelyingParties: []RelyingParty{{ID: "example.com", Name: "Example", Origins: []string{"https://example.com", "https://login.example.com"}}}}
		w.ApplyDefaults()
		return w
	}
	if w := valid(); w.Validate() != nil || w.UserVerification != "preferred" || w.Timeout.Std().Minutes() != 5 {
		t.Fatalf("defaults: %+v, %v", w, w.Validate())
	}
	local := WebAuthn{RelyingParties: []RelyingParty{{ID: "localhost", Name: "L", Origins: []string{"http://localhost:8080", "http://127.0.0.1:8080"}}}}
	local.ApplyDefaults()
	if err := local.Validate(); err != nil {
		t.Fatalf("localhost over http: %v", err)
	}
	for _, tc := range []struct {
		field string
		edit  func(w *WebAuthn)
	}{
		{"relyingParties[0].id", func(w *WebAuthn) { w.RelyingParties[0].ID = "Example.COM" }},
		{"relyingParties[0].id", func(w *WebAuthn) { w.RelyingParties[0].ID = "https://example.com" }},
		{"relyingParties[0].name", func(w *WebAuthn) { w.RelyingParties[0].Name = "" }},
		{"relyingParties[0].origins", func(w *WebAuthn) { w.RelyingParties[0].Origins = nil }},
		{"relyingParties[0].origins[0]", func(w *WebAuthn) { w.RelyingParties[0].Origins[0] = "http://example.com" }},
		{"relyingParties[0].origins[1]", func(w *WebAuthn) { w.RelyingParties[0].Origins[1] = "https://evil.com" }},
		{"relyingParties[0].origins[0]", func(w *WebAuthn) { w.RelyingParties[0].Origins[0] = "https://example.com/path" }},
		{"relyingParties[1].id", func(w *WebAuthn) { w.RelyingParties = append(w.RelyingParties, w.RelyingParties[0]) }},
		{"userVerification", func(w *WebAuthn) { w.UserVerification = "always" }},
		{"residentKey", func(w *WebAuthn) { w.ResidentKey = "yes" }},
		{"attestation", func(w *WebAuthn) { w.Attestation = "enterprise" }},
		{"allowedAaguids[0]", func(w *WebAuthn) { w.Attestation, w.AllowedAAGUIDs = "direct", []string{"not-a-uuid"} }},
		{"allowedAaguids", func(w *WebAuthn) { w.AllowedAAGUIDs = []string{"ee882879-721c-4913-9775-3dfcce97072a"} }},
		{"failure.count", func(w *WebAuthn) { w.Failure.Count = 8 }},
		{"failure.coolDown", func(w *WebAuthn) { w.Failure.CoolDown = Duration{Duration: 1, TimeUnit: "MINUTES"} }},
		{"timeout", func(w *WebAuthn) { w.Timeout = Duration{Duration: 11, TimeUnit: "MINUTES"} }},
	} {
		w := valid()
		tc.edit(&w)
		err := w.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
}
