package mfa

import (
	"crypto/subtle"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters every common authenticator app supports.
const (
	TOTPPeriod    = 30
	TOTPDigits    = 6
	TOTPAlgorithm = "SHA1"
)

// TOTPKey is a fresh authenticator-app secret and its otpauth:// URI.
type TOTPKey struct {
	Secret string // base32, no padding
	URI    string
}

// NewTOTPKey makes a 160-bit secret for account at issuer.
func NewTOTPKey(issuer, account string) (TOTPKey, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Period: TOTPPeriod,
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPKey{}, fmt.Errorf("mfa: generate TOTP key: %w", err)
	}
	return TOTPKey{Secret: key.Secret(), URI: key.URL()}, nil
}

// SecretFromURI reads the secret back out of an otpauth://totp/ URI. Any
// other text is an error: otp.NewKeyFromURL accepts nearly anything and
// would yield an empty secret, whose codes anyone can compute.
func SecretFromURI(uri string) (string, error) {
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(uri)), "otpauth://") || key.Type() != "totp" || key.Secret() == "" {
		return "", fmt.Errorf("mfa: not an otpauth://totp/ URI with a secret")
	}
	return key.Secret(), nil
}

// TOTPStep is the 30-second window number of t.
func TOTPStep(t time.Time) int64 { return t.Unix() / TOTPPeriod }

// VerifyTOTP checks code against secret at now, accepting grace windows
// either side. It refuses any window at or before lastStep, so a code
// (or an older one) can never be used twice. It returns the matched window
// so the caller can remember it as the new lastStep.
func VerifyTOTP(secret, code string, now time.Time, grace int, lastStep int64) (step int64, ok bool, replayed bool) {
	if len(code) != TOTPDigits {
		return 0, false, false
	}
	opts := totp.ValidateOpts{Period: TOTPPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	cur := TOTPStep(now)
	for d := -int64(grace); d <= int64(grace); d++ {
		s := cur + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*TOTPPeriod, 0), opts)
		if err != nil {
			return 0, false, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			if s <= lastStep {
				return s, false, true
			}
			return s, true, false
		}
	}
	return 0, false, false
}

// TOTPCode computes the current code; used by tests and the load generator.
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{Period: TOTPPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}
