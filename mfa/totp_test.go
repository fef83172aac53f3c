package mfa_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/mfa"
)

const testSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" // 160 bits, base32

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := mfa.TOTPCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyTOTP(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC) // 9 s into its window
	cur := mfa.TOTPStep(now)
	if cur != now.Unix()/30 {
		t.Fatalf("TOTPStep = %d", cur)
	}
	// The codes of the windows around now must differ for the test to
	// mean anything.
	codes := map[int64]string{}
	distinct := map[string]bool{}
	for d := int64(-3); d <= 3; d++ {
		c := codeAt(t, testSecret, time.Unix((cur+d)*30, 0))
		codes[d] = c
		distinct[c] = true
	}
	if len(distinct) != 7 {
		t.Fatalf("colliding codes around now, pick another time: %v", codes)
	}
	if got := codeAt(t, testSecret, now); got != codes[0] || len(got) != 6 {
		t.Fatalf("TOTPCode = %q", got)
	}

	tests := []struct {
		name         string
		code         string
		grace        int
		lastStep     int64
		wantStep     int64
		wantOK       bool
		wantReplayed bool
	}{
		{"current", codes[0], 1, 0, cur, true, false},
		{"previous within grace", codes[-1], 1, 0, cur - 1, true, false},
		{"next within grace", codes[1], 1, 0, cur + 1, true, false},
		{"two back beyond grace 1", codes[-2], 1, 0, 0, false, false},
		{"two ahead beyond grace 1", codes[2], 1, 0, 0, false, false},
		{"two back within grace 2", codes[-2], 2, 0, cur - 2, true, false},
		{"three ahead beyond grace 2", codes[3], 2, 0, 0, false, false},
		{"grace 0 current", codes[0], 0, 0, cur, true, false},
		{"grace 0 previous", codes[-1], 0, 0, 0, false, false},
		{"replay of the same window", codes[0], 1, cur, cur, false, true},
		{"older window after a newer one", codes[-1], 1, cur, cur - 1, false, true},
		{"older window equal to last", codes[-1], 1, cur - 1, cur - 1, false, true},
		{"newer than last", codes[0], 1, cur - 1, cur, true, false},
		{"next window after current was used", codes[1], 1, cur, cur + 1, true, false},
		{"wrong code", wrongCode(codes), 1, 0, 0, false, false},
		{"too short", codes[0][:5], 1, 0, 0, false, false},
		{"too long", codes[0] + "0", 1, 0, 0, false, false},
		{"empty", "", 1, 0, 0, false, false},
	}
	for _, tc := range tests {
		step, ok, replayed := mfa.VerifyTOTP(testSecret, tc.code, now, tc.grace, tc.lastStep)
		if ok != tc.wantOK || replayed != tc.wantReplayed || (tc.wantOK || tc.wantReplayed) && step != tc.wantStep {
			t.Errorf("%s: VerifyTOTP(%q, grace %d, last %d) = %d %v %v; want %d %v %v",
				tc.name, tc.code, tc.grace, tc.lastStep, step, ok, replayed, tc.wantStep, tc.wantOK, tc.wantReplayed)
		}
	}
	// A secret that is not base32 never verifies.
	if _, ok, _ := mfa.VerifyTOTP("not base32!", codes[0], now, 1, 0); ok {
		t.Error("invalid secret verified")
	}
}

func wrongCode(codes map[int64]string) string {
	for _, c := range []string{"000000", "111111", "222222"} {
		used := false
		for _, x := range codes {
			used = used || x == c
		}
		if !used {
			return c
		}
	}
	return "333333"
}

func TestNewTOTPKeyAndSecretFromURI(t *testing.T) {
	key, err := mfa.NewTOTPKey("Example Co", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(key.Secret) != 32 || strings.Contains(key.Secret, "=") {
		t.Fatalf("secret %q: want 160 bits of unpadded base32", key.Secret)
	}
	u, err := url.Parse(key.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("URI %q: %v", key.URI, err)
	}
	q := u.Query()
	if q.Get("issuer") != "Example Co" || q.Get("period") != "30" || q.Get("digits") != "6" || q.Get("algorithm") != "SHA1" {
		t.Fatalf("URI parameters %v", q)
	}
	got, err := mfa.SecretFromURI(key.URI)
	if err != nil || got != key.Secret {
		t.Fatalf("SecretFromURI = %q, %v; want %q", got, err, key.Secret)
	}
	other, _ := mfa.NewTOTPKey("Example Co", "alice@example.com")
	if other.Secret == key.Secret {
		t.Fatal("two keys share a secret")
	}
	now := time.Now()
	if _, ok, _ := mfa.VerifyTOTP(key.Secret, codeAt(t, key.Secret, now), now, 1, 0); !ok {
		t.Fatal("a fresh key's current code does not verify")
	}

	for _, bad := range []string{
		"", "garbage", "%zz", "https://example.com/?secret=ABC",
		"otpauth://totp/x?secret=", "otpauth://totp/x", "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP",
	} {
		if s, err := mfa.SecretFromURI(bad); err == nil {
			t.Errorf("SecretFromURI(%q) = %q, nil; want an error", bad, s)
		}
	}
	if s, err := mfa.SecretFromURI("otpauth://totp/Issuer:acct?secret=JBSWY3DPEHPK3PXP&issuer=Issuer"); err != nil || s != "JBSWY3DPEHPK3PXP" {
		t.Errorf("hand-written URI: %q %v", s, err)
	}
}
