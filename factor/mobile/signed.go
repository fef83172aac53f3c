package mobile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// What the phone sends after pairing is signed with its device key. The
// request body is a compact JWS (RFC 7515, ES256) whose protected header
// names the device (kid) and whose payload binds the request to its
// method, path and time, with the claims of DPoP (RFC 9449): htm, htu, iat
// and a unique jti, plus sub (the user the pairing answered) and the
// request's own fields. JWS rather than HTTP Message Signatures (RFC 9421):
// the signature covers exactly the bytes the service reads, with nothing
// to canonicalize that a proxy could rewrite (headers, a path that is
// re-encoded), mobile platforms and go-jose have mature JOSE libraries, and
// the app already made a JWK for the pairing.

// SignedRequestType is the JWS typ header of a signed request.
const SignedRequestType = "enrollflow-device+jwt"

// ClockSkew is how far a signed request's iat may be from the server's
// clock. A jti is remembered for ReplayWindow: the 2×ClockSkew in which
// one node accepts it, plus a minute for the clocks of nodes (which check
// iat) and Redis (which remembers the jti) to differ. A replay inside the
// window is caught; one outside it is refused for its age.
const (
	ClockSkew    = 60 * time.Second
	ReplayWindow = 2*ClockSkew + time.Minute
)

// Claims are a signed request's payload.
type Claims struct {
	Subject  string `json:"sub"`
	Method   string `json:"htm"`
	Path     string `json:"htu"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti"`
	// The push-token update's field.
	PushToken *string `json:"pushToken,omitempty"`
}

// Signed is a parsed, not yet verified, signed request.
type Signed struct {
	DeviceID string
	Claims   Claims // unverified until Verify
	jws      *jose.JSONWebSignature
}

// ParseSigned reads a signed request's body. Only ES256 is accepted.
func ParseSigned(body string) (*Signed, error) {
	jws, err := jose.ParseSignedCompact(body, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("the body must be a compact JWS signed with ES256: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("the JWS must have exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if h.KeyID == "" {
		return nil, errors.New("the JWS header must name the device (kid)")
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != SignedRequestType {
		return nil, fmt.Errorf("the JWS header typ must be %s", SignedRequestType)
	}
	s := &Signed{DeviceID: h.KeyID, jws: jws}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &s.Claims); err != nil {
		return nil, fmt.Errorf("the JWS payload must be a JSON object of claims: %v", err)
	}
	return s, nil
}

// Verify checks the signature with the device's public key (a JWK) and
// the claims against the request: method, path and time. It returns the
// verified claims.
func (s *Signed) Verify(publicJWK []byte, method, path string, now time.Time) (Claims, error) {
	key, err := ParsePublicKey(publicJWK)
	if err != nil {
		return Claims{}, err
	}
	payload, err := s.jws.Verify(key.Key)
	if err != nil {
		return Claims{}, errors.New("the signature does not verify with the device's key")
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, err
	}
	switch iat := time.Unix(c.IssuedAt, 0); {
	case c.Method != method || c.Path != path:
		return Claims{}, fmt.Errorf("the request is signed for %s %s, not %s %s", c.Method, c.Path, method, path)
	case c.IssuedAt == 0 || iat.Before(now.Add(-ClockSkew)) || iat.After(now.Add(ClockSkew)):
		return Claims{}, fmt.Errorf("iat must be within %s of the server's time", ClockSkew)
	case len(c.ID) < 16 || len(c.ID) > 128:
		return Claims{}, errors.New("jti must be a unique id of 16 to 128 characters")
	}
	return c, nil
}

// ParsePublicKey reads the phone's key: a JWK of an EC P-256 public key,
// and nothing private.
func ParsePublicKey(raw []byte) (*jose.JSONWebKey, error) {
	var k jose.JSONWebKey
	if len(raw) == 0 {
		return nil, errors.New("is required: the app's public key as a JWK (EC P-256)")
	}
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("must be a JWK: %v", err)
	}
	pub, ok := k.Key.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("must be the public key of an EC P-256 key pair (kty EC, crv P-256, x, y, and no d)")
	}
	if pub.Curve != elliptic.P256() {
		return nil, errors.New("must be on the curve P-256")
	}
	k.KeyID, k.Algorithm, k.Use = "", "", ""
	return &k, nil
}
