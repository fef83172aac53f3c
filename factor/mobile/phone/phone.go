// Package phone is the app's side of pairing, as a mobile SDK would do it:
// a P-256 key pair kept in a file, the pairing request, requests signed
// with the device key, and the offline passcodes of the seed the pairing
// answered. `enrollflow pair` and the tests play the authenticator app
// with it; it speaks only the documented HTTP API.
package phone

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/factor/mobile"
	"github.com/enrollflow/enrollflow/mfa"
)

// Keys are what the app keeps: its key pair and, once paired, what the
// pairing answered. The file holds a private key and the offline seed:
// it is written 0600.
type Keys struct {
	PrivateKey jose.JSONWebKey `json:"privateKey"`
	Server     string          `json:"server,omitempty"`
	EnvID      string          `json:"env,omitempty"`
	DeviceID   string          `json:"deviceId,omitempty"`
	UserID     string          `json:"userId,omitempty"`
	Seed       string          `json:"seed,omitempty"`
}

// NewKeys makes a fresh key pair.
func NewKeys() (*Keys, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Keys{PrivateKey: jose.JSONWebKey{Key: k, Algorithm: string(jose.ES256)}}, nil
}

// LoadOrCreate reads the key file, or makes new keys when there is none.
func LoadOrCreate(path string) (*Keys, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return NewKeys()
	}
	if err != nil {
		return nil, err
	}
	var k Keys
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, ok := k.PrivateKey.Key.(*ecdsa.PrivateKey); !ok {
		return nil, fmt.Errorf("%s: privateKey is not an EC private key", path)
	}
	return &k, nil
}

// Save writes the key file (0600).
func (k *Keys) Save(path string) error {
	raw, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o600)
}

// PublicJWK is the public half, as the pairing sends it.
func (k *Keys) PublicJWK() json.RawMessage {
	pub := k.PrivateKey.Public()
	raw, _ := pub.MarshalJSON()
	return raw
}

// Device is what the app says of the phone, as the pairing sends it.
type Device = actions.PairingDevice

// Refused is a pairing (or signed request) the service refused.
type Refused struct {
	Status  int
	Code    string
	Message string
}

func (e *Refused) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Pair presents code for application and records, in k, what the service
// answered (device, user, seed). server and env may come from a pairing
// URI (ParseCodeOrURI).
func (k *Keys) Pair(ctx context.Context, c *http.Client, server, envID, application, code string, dev Device) error {
	body, _ := json.Marshal(map[string]any{"pairingKey": code, "application": map[string]string{"id": application},
		"device": dev, "publicKey": k.PublicJWK()})
	url := strings.TrimRight(server, "/") + "/" + envID + "/mobile/pairings"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	var paired struct {
		Device struct{ ID string } `json:"device"`
		User   struct{ ID string } `json:"user"`
		OTP    struct {
			Secret string `json:"secret"`
		} `json:"otp"`
	}
	if err := call(c, req, http.StatusCreated, &paired); err != nil {
		return err
	}
	k.Server, k.EnvID = strings.TrimRight(server, "/"), envID
	k.DeviceID, k.UserID, k.Seed = paired.Device.ID, paired.User.ID, paired.OTP.Secret
	return nil
}

// ParseCodeOrURI reads what the user scanned or typed: a pairing URI
// (server and env from it) or a bare code (server and env as given).
func ParseCodeOrURI(s, server, envID string) (string, string, string, error) {
	if strings.Contains(s, "://") {
		return mobile.ParsePairingURI(s)
	}
	if server == "" || envID == "" {
		return "", "", "", errors.New("a bare pairing code needs --server and --env")
	}
	return server, envID, s, nil
}

// Sign makes the compact JWS of a request to method path with the extra
// claims, signed by the device key.
func (k *Keys) Sign(method, path string, now time.Time, extra map[string]any) (string, error) {
	claims := map[string]any{"sub": k.UserID, "htm": method, "htu": path, "iat": now.Unix(), "jti": newJTI()}
	for n, v := range extra {
		claims[n] = v
	}
	payload, _ := json.Marshal(claims)
	opts := (&jose.SignerOptions{}).WithType(mobile.SignedRequestType).WithHeader("kid", k.DeviceID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.PrivateKey.Key}, opts)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// PutPushToken registers a new push token, signed.
func (k *Keys) PutPushToken(ctx context.Context, c *http.Client, token string) error {
	path := "/" + k.EnvID + "/mobile/devices/" + k.DeviceID + "/pushToken"
	jws, err := k.Sign(http.MethodPut, path, time.Now(), map[string]any{"pushToken": token})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, k.Server+path, strings.NewReader(jws))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/jose")
	return call(c, req, http.StatusNoContent, nil)
}

// Passcode is the offline passcode at t.
func (k *Keys) Passcode(t time.Time) (string, error) {
	if k.Seed == "" {
		return "", errors.New("not paired: the key file has no seed")
	}
	return mfa.TOTPCode(k.Seed, t)
}

func newJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// call sends req and decodes a want answer into out, or returns Refused.
func call(c *http.Client, req *http.Request, want int, out any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		var e struct{ Code, Message string }
		_ = json.Unmarshal(raw, &e)
		if e.Code == "" {
			e.Code, e.Message = "HTTP_"+fmt.Sprint(resp.StatusCode), strings.TrimSpace(string(raw))
		}
		return &Refused{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}
