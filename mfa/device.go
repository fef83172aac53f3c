package mfa

import (
	"encoding/json"
	"fmt"
	"time"
)

// Device statuses in the registry.
const (
	StatusActive = "ACTIVE"
)

// DeviceSchema is the version of the record layout written now. Version 1
// (no "schema" field) kept the TOTP secret and replay guard at the top
// level; ParseDevice reads it into the current layout.
const DeviceSchema = 2

// Device is one registry entry: the fields every kind of device has, plus
// one typed part owned by its factor (Factor, JSON the factor reads).
// Secrets are stored sealed, never in the clear.
type Device struct {
	Schema   int        `json:"schema"`
	ID       string     `json:"id"`
	Type     DeviceType `json:"type"`
	Status   string     `json:"status"`
	Nickname string     `json:"nickname,omitempty"`
	// Policy is the device authentication policy it was enrolled under:
	// its verifications follow it ("" for records from before: the
	// environment's default).
	Policy    string    `json:"policy,omitempty"`
	Email     string    `json:"email,omitempty"` // where an EMAIL device's passcodes go
	Phone     string    `json:"phone,omitempty"` // SMS and VOICE, E.164
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Factor is the factor's own part (factor/totp: the sealed secret and
	// the last accepted time step).
	Factor json.RawMessage `json:"factor,omitempty"`
}

// legacyTOTP are the version-1 TOTP fields.
type legacyTOTP struct {
	SealedTOTP   string `json:"sealedTotp,omitempty"`
	LastTOTPStep int64  `json:"lastTotpStep,omitempty"`
}

// TOTPPart is factor/totp's part of a device record. It is declared here
// so that the version-1 layout can be read into it.
type TOTPPart struct {
	Sealed   string `json:"sealed"`             // the otpauth:// URI, sealed and bound to the device id
	LastStep int64  `json:"lastStep,omitempty"` // the last accepted time step: codes at or before it are replays
}

// OTPPart is factor/otp's part of a device record: the passcode issued to
// it outside an enrollment (a sign-in), as a keyed hash, until it is used
// or expires.
type OTPPart struct {
	Issue     int       `json:"issue,omitempty"` // passcodes issued: each is counted apart
	Hash      []byte    `json:"hash,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	SentAt    time.Time `json:"sentAt,omitzero"`
}

// ParseDevice reads a stored record of any schema into the current one.
func ParseDevice(data []byte) (Device, error) {
	var d Device
	if err := json.Unmarshal(data, &d); err != nil {
		return Device{}, fmt.Errorf("mfa: device record: %w", err)
	}
	switch d.Schema {
	case DeviceSchema:
	case 0: // version 1
		var old legacyTOTP
		_ = json.Unmarshal(data, &old)
		if old.SealedTOTP != "" {
			d.Factor, _ = json.Marshal(TOTPPart{Sealed: old.SealedTOTP, LastStep: old.LastTOTPStep})
		}
		d.Schema = DeviceSchema
	default:
		return Device{}, fmt.Errorf("mfa: device record of schema %d, newer than this build (%d)", d.Schema, DeviceSchema)
	}
	return d, nil
}

// Marshal writes the record in the current schema.
func (d Device) Marshal() ([]byte, error) {
	d.Schema = DeviceSchema
	return json.Marshal(d)
}

// PublicView is what the management API shows of a device: never a
// secret, addresses masked.
func (d *Device) PublicView() map[string]any {
	v := map[string]any{
		"id": d.ID, "type": d.Type, "status": d.Status,
		"createdAt": d.CreatedAt, "updatedAt": d.UpdatedAt,
	}
	if d.Nickname != "" {
		v["nickname"] = d.Nickname
	}
	if d.Email != "" {
		v["email"] = MaskEmail(d.Email)
	}
	if d.Phone != "" {
		v["phone"] = MaskPhone(d.Phone)
	}
	return v
}
