package mfa

import "time"

// Device statuses in the registry.
const (
	StatusActive = "ACTIVE"
)

// Device is one registry entry. Secrets are stored sealed (Sealer), never
// in the clear.
type Device struct {
	ID           string     `json:"id"`
	Type         DeviceType `json:"type"`
	Status       string     `json:"status"`
	Nickname     string     `json:"nickname,omitempty"`
	Email        string     `json:"email,omitempty"`
	Phone        string     `json:"phone,omitempty"`
	SealedTOTP   string     `json:"sealedTotp,omitempty"`   // sealed otpauth:// URI
	LastTOTPStep int64      `json:"lastTotpStep,omitempty"` // replay guard
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
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
