package webauthn

import (
	"crypto/rand"
	"math/big"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// coseRSA is an RSA COSE key with a modulus of bits and exponent e.
func coseRSA(t *testing.T, bits int, e int64) []byte {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits)))
	if err != nil {
		t.Fatal(err)
	}
	n.SetBit(n, bits-1, 1)
	raw, err := cbor.Marshal(map[int]any{1: 3, 3: -257, -1: n.Bytes(), -2: big.NewInt(e).Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestCheckKey: RSA keys are bounded, so that a huge one cannot make
// every signature check cost seconds.
func TestCheckKey(t *testing.T) {
	if err := checkKey(coseRSA(t, 2048, 65537)); err != nil {
		t.Fatalf("a 2048-bit key: %v", err)
	}
	for name, key := range map[string][]byte{
		"8192 bits":       coseRSA(t, 8192, 65537),
		"a huge exponent": coseRSA(t, 2048, 1<<31-1),
		"not COSE":        []byte{0x01, 0x02},
	} {
		if checkKey(key) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
