package mfa

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"math/big"
)

// NewOTP returns a uniformly random numeric passcode of the given length.
func NewOTP(length int) string {
	max := big.NewInt(10)
	b := make([]byte, length)
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("mfa: crypto/rand failed: " + err.Error())
		}
		b[i] = byte('0' + n.Int64())
	}
	return string(b)
}

// OTPHasher keeps passcodes only as keyed hashes: a leaked store does not
// reveal live passcodes, and without the key nobody can test guesses offline.
type OTPHasher struct{ key []byte }

// NewOTPHasher takes a key of at least 32 bytes (see Keys).
func NewOTPHasher(key []byte) *OTPHasher { return &OTPHasher{key: key} }

// Hash binds the passcode to its context (the device it was sent for), so
// a hash copied to another device's record does not verify there.
func (h *OTPHasher) Hash(context, otp string) []byte { return KeyedHash(h.key, context, otp) }

// KeyedHash is HMAC-SHA256 under key of the parts, each ended by a zero
// byte so that ("ab", "c") and ("a", "bc") differ: how the service names
// what it must find again without keeping it (a passcode, an address's
// budget, a pairing key, a user's WebAuthn handle).
func KeyedHash(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// Verify compares in constant time.
func (h *OTPHasher) Verify(context, otp string, hash []byte) bool {
	return hmac.Equal(h.Hash(context, otp), hash)
}
