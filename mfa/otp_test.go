package mfa_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/mfa"
)

func TestNewOTPShape(t *testing.T) {
	for _, n := range []int{0, 1, 6, 8, 10} {
		for i := 0; i < 50; i++ {
			code := mfa.NewOTP(n)
			if len(code) != n {
				t.Fatalf("NewOTP(%d) = %q", n, code)
			}
			for _, c := range code {
				if c < '0' || c > '9' {
					t.Fatalf("NewOTP(%d) = %q has a non-digit", n, code)
				}
			}
		}
	}
}

// Every digit, overall and at every position, appears within 20% of its
// expected frequency over 10k codes (about 7 and 27 standard deviations
// of slack respectively, so this does not flake; a biased generator, such
// as a modulo of a byte, fails it).
func TestNewOTPUniform(t *testing.T) {
	const codes, length = 10000, 6
	var total [10]int
	var perPos [length][10]int
	seen := map[string]int{}
	for i := 0; i < codes; i++ {
		code := mfa.NewOTP(length)
		seen[code]++
		for p, c := range code {
			total[c-'0']++
			perPos[p][c-'0']++
		}
	}
	check := func(what string, counts []int, expected float64) {
		for d, n := range counts {
			if dev := (float64(n) - expected) / expected; dev > 0.2 || dev < -0.2 {
				t.Errorf("%s: digit %d appears %d times, expected %.0f ±20%%", what, d, n, expected)
			}
		}
	}
	check("overall", total[:], codes*length/10.0)
	for p := range perPos {
		check("position "+string(rune('0'+p)), perPos[p][:], codes/10.0)
	}
	// 10k draws out of a million: a handful of collisions at most.
	if dup := codes - len(seen); dup > 200 {
		t.Errorf("%d duplicate codes out of %d", dup, codes)
	}
}

func TestOTPHasher(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	h := mfa.NewOTPHasher(key)
	hash := h.Hash("device-1", "123456")
	if len(hash) != 32 {
		t.Fatalf("hash length %d", len(hash))
	}
	if !bytes.Equal(hash, h.Hash("device-1", "123456")) {
		t.Fatal("Hash is not deterministic")
	}
	if bytes.Contains(hash, []byte("123456")) {
		t.Fatal("hash contains the passcode")
	}
	tests := []struct {
		ctx, otp string
		want     bool
	}{
		{"device-1", "123456", true},
		{"device-1", "123457", false},
		{"device-1", "", false},
		{"device-1", "1234567", false},
		{"device-2", "123456", false}, // same code, other context
		{"device-", "1123456", false}, // no ambiguity between context and code
		{"", "device-1123456", false},
	}
	for _, tc := range tests {
		if got := h.Verify(tc.ctx, tc.otp, hash); got != tc.want {
			t.Errorf("Verify(%q, %q) = %v, want %v", tc.ctx, tc.otp, got, tc.want)
		}
	}
	if mfa.NewOTPHasher(bytes.Repeat([]byte{2}, 32)).Verify("device-1", "123456", hash) {
		t.Error("a hash verifies under another key")
	}
	if h.Verify("device-1", "123456", nil) || h.Verify("device-1", "123456", hash[:16]) {
		t.Error("a nil or truncated hash verifies")
	}
}

func TestDeriveKeys(t *testing.T) {
	for _, n := range []int{0, 16, 31} {
		if _, err := mfa.DeriveKeys(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
			t.Errorf("DeriveKeys(%d bytes) = %v, want an error", n, err)
		}
	}
	master := bytes.Repeat([]byte("k"), 32)
	a, err := mfa.DeriveKeys(master)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mfa.DeriveKeys(append([]byte(nil), master...))
	if !bytes.Equal(a.OTPHash, b.OTPHash) || !bytes.Equal(a.SealTOTP, b.SealTOTP) || !bytes.Equal(a.SealConfig, b.SealConfig) {
		t.Fatal("DeriveKeys is not deterministic: nodes sharing a secret would disagree")
	}
	if len(a.OTPHash) != 32 || len(a.SealTOTP) != 32 || len(a.SealConfig) != 32 {
		t.Fatalf("key lengths %d %d %d", len(a.OTPHash), len(a.SealTOTP), len(a.SealConfig))
	}
	if bytes.Equal(a.OTPHash, a.SealTOTP) || bytes.Equal(a.OTPHash, a.SealConfig) || bytes.Equal(a.SealTOTP, a.SealConfig) {
		t.Fatal("two purpose keys are equal")
	}
	if bytes.Equal(a.OTPHash, master) || bytes.Equal(a.SealTOTP, master) {
		t.Fatal("a derived key is the master secret")
	}
	other := append(bytes.Repeat([]byte("k"), 31), 'j')
	c, _ := mfa.DeriveKeys(other)
	if bytes.Equal(a.OTPHash, c.OTPHash) || bytes.Equal(a.SealTOTP, c.SealTOTP) {
		t.Fatal("different masters give the same keys")
	}
	long, err := mfa.DeriveKeys(bytes.Repeat([]byte("k"), 64))
	if err != nil || bytes.Equal(long.OTPHash, a.OTPHash) {
		t.Fatalf("64-byte master: %v", err)
	}
}

func newSealer(t *testing.T, b byte) *mfa.Sealer {
	t.Helper()
	s, err := mfa.NewSealer(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealer(t *testing.T) {
	s := newSealer(t, 3)
	secret := []byte("otpauth://totp/enrollflow:alice?secret=JBSWY3DPEHPK3PXP")
	sealed := s.Seal(secret, "device-1")
	if strings.Contains(sealed, "JBSWY3DPEHPK3PXP") {
		t.Fatal("sealed text contains the secret")
	}
	got, err := s.Open(sealed, "device-1")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if again := s.Seal(secret, "device-1"); again == sealed {
		t.Fatal("two seals are identical: the nonce is not random")
	}
	empty, err := s.Open(s.Seal(nil, "o"), "o")
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty plaintext: %q %v", empty, err)
	}

	if _, err := s.Open(sealed, "device-2"); !errors.Is(err, mfa.ErrUnseal) {
		t.Errorf("wrong owner: %v", err)
	}
	if _, err := s.Open(sealed, ""); !errors.Is(err, mfa.ErrUnseal) {
		t.Errorf("empty owner: %v", err)
	}
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 11, 12, len(raw) / 2, len(raw) - 1} { // nonce, ciphertext, tag
		tampered := append([]byte(nil), raw...)
		tampered[i] ^= 0x01
		if _, err := s.Open(base64.RawStdEncoding.EncodeToString(tampered), "device-1"); !errors.Is(err, mfa.ErrUnseal) {
			t.Errorf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := s.Open(base64.RawStdEncoding.EncodeToString(raw[:len(raw)-1]), "device-1"); !errors.Is(err, mfa.ErrUnseal) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := newSealer(t, 4).Open(sealed, "device-1"); !errors.Is(err, mfa.ErrUnseal) {
		t.Errorf("different key: %v", err)
	}
	for _, bad := range []string{"", "!!!", "AAAA", sealed + "=", base64.StdEncoding.EncodeToString(raw)} {
		if _, err := s.Open(bad, "device-1"); !errors.Is(err, mfa.ErrUnseal) {
			t.Errorf("Open(%q) = %v", bad, err)
		}
	}
	if _, err := mfa.NewSealer([]byte("short")); err == nil {
		t.Error("NewSealer accepted a 5-byte key")
	}
}
