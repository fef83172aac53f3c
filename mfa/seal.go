package mfa

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// Keys are the secrets a node needs; every node of one deployment must get
// the same master secret so any node can verify what another stored.
type Keys struct {
	OTPHash  []byte // HMAC key for passcode hashes
	SealTOTP []byte // AES-256-GCM key for TOTP seeds at rest
	// SealConfig is the AES-256-GCM key for configuration saved through the
	// API that holds credentials (a channel's SMTP password, a provider
	// token).
	SealConfig []byte
	// AddressKey is the HMAC key that turns an address into the name of
	// its send budget, so that the store holds no phone number or e-mail
	// address in the clear and cannot be searched for one.
	AddressKey []byte
	// PairingKey is the HMAC key of pairing-key hashes: the store finds a
	// pairing by the hash and never holds the key in the clear.
	PairingKey []byte
	// UserHandle is the HMAC key of WebAuthn user handles: opaque, stable
	// per user, no id in the clear.
	UserHandle []byte
}

// DeriveKeys expands one master secret (at least 32 bytes) into
// independent purpose-bound keys with HKDF-SHA256.
func DeriveKeys(master []byte) (Keys, error) {
	if len(master) < 32 {
		return Keys{}, fmt.Errorf("master secret must be at least 32 bytes, got %d", len(master))
	}
	otpKey, err := hkdf.Key(sha256.New, master, nil, "enrollflow otp-hash v1", 32)
	if err != nil {
		return Keys{}, err
	}
	sealKey, err := hkdf.Key(sha256.New, master, nil, "enrollflow totp-seal v1", 32)
	if err != nil {
		return Keys{}, err
	}
	configKey, err := hkdf.Key(sha256.New, master, nil, "enrollflow config-seal v1", 32)
	if err != nil {
		return Keys{}, err
	}
	addressKey, err := hkdf.Key(sha256.New, master, nil, "enrollflow address-budget v1", 32)
	if err != nil {
		return Keys{}, err
	}
	pairingKey, err := hkdf.Key(sha256.New, master, nil, "enrollflow pairing-key v1", 32)
	if err != nil {
		return Keys{}, err
	}
	userHandle, err := hkdf.Key(sha256.New, master, nil, "enrollflow webauthn-user-handle v1", 32)
	if err != nil {
		return Keys{}, err
	}
	return Keys{OTPHash: otpKey, SealTOTP: sealKey, SealConfig: configKey, AddressKey: addressKey, PairingKey: pairingKey, UserHandle: userHandle}, nil
}

// Sealer encrypts small secrets at rest with AES-256-GCM. The associated
// data binds a ciphertext to its owner, so it cannot be moved elsewhere.
type Sealer struct{ aead cipher.AEAD }

// NewSealer takes a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal returns base64(nonce || ciphertext).
func (s *Sealer) Seal(plaintext []byte, owner string) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("mfa: crypto/rand failed: " + err.Error())
	}
	return base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plaintext, []byte(owner)))
}

// ErrUnseal means the ciphertext was altered, moved or sealed with another key.
var ErrUnseal = errors.New("mfa: cannot unseal secret")

// Open reverses Seal.
func (s *Sealer) Open(sealed, owner string) ([]byte, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return nil, ErrUnseal
	}
	n := s.aead.NonceSize()
	out, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(owner))
	if err != nil {
		return nil, ErrUnseal
	}
	return out, nil
}
