package factor

import "time"

// Refusals is what a factor whose pending device cools down keeps of its
// refused proofs (TOTP codes, WebAuthn ceremonies): at the limit the device
// is refused until LockedUntil, and then counted afresh. Its JSON fields
// are flattened into the factor's pending data.
type Refusals struct {
	Count       int       `json:"f,omitempty"`
	LockedUntil time.Time `json:"l,omitzero"`
}

// Counted records that attempt proofs have been refused (the regulation's
// count, which parallel requests may have raised past what r says): at
// limit, the cool-down starts.
func (r Refusals) Counted(attempt, limit int, coolDown time.Duration, now time.Time) Refusals {
	if attempt <= r.Count || now.Before(r.LockedUntil) {
		return r
	}
	r.Count = attempt
	if r.Count >= limit {
		r.Count, r.LockedUntil = 0, now.Add(coolDown)
	}
	return r
}

// Usable reports whether a proof may be tried at now.
func (r Refusals) Usable(now time.Time) bool { return !now.Before(r.LockedUntil) }
