// Package delivery sends passcodes to users. A Sender is one channel
// (the development outbox now; SMTP, SMS and voice providers plug in beside
// it); the enrollment step builds a Message from a template and hands it
// over after the execution is saved.
package delivery

import (
	"context"
	"fmt"
)

// Method is how a message reaches the user.
type Method string

const (
	Email Method = "EMAIL"
	SMS   Method = "SMS"
	Voice Method = "VOICE"
)

// Message is one rendered message. Body holds the passcode: a Sender must
// never log it.
type Message struct {
	// ID names this delivery; it stays the same across retries so that a
	// receiver can drop a duplicate.
	ID        string `json:"id,omitempty"`
	EnvID     string `json:"environmentId"`
	Method    Method `json:"channel"`
	Recipient string `json:"recipient"`
	Locale    string `json:"locale"`
	Subject   string `json:"subject,omitempty"`
	Body      string `json:"body"`
	HTMLBody  string `json:"htmlBody,omitempty"`
}

// Pairing asks for a device-pairing message: the passcode and what a
// template may say around it.
type Pairing struct {
	EnvID     string
	Method    Method
	Recipient string
	// Locale is the step input template.locale ("" for the environment's
	// default); Variant the step configuration's template.variant.
	Locale, Variant string
	OTP             string
	// The user, for ${user.username}, ${user.email}, ${user.mobilePhone}.
	Username, Email, MobilePhone string
	// Variables are the input template.variables, as text.
	Variables map[string]string
}

// Sender delivers messages over one channel.
type Sender interface {
	Send(ctx context.Context, msg Message) error
}

// Router picks the Sender for each method.
type Router map[Method]Sender

// Send delivers msg through the sender configured for its method.
func (r Router) Send(ctx context.Context, msg Message) error {
	s, ok := r[msg.Method]
	if !ok {
		return fmt.Errorf("delivery: no channel configured for %s", msg.Method)
	}
	return s.Send(ctx, msg)
}
