// Package delivery is what every passcode channel shares: the Message, the
// Sender interface, failures classified as transient, permanent or
// misconfigured, the Retrying wrapper, and the development outbox. The
// channels themselves (smtp, webhook, twilio), the device_pairing templates
// and the dispatcher that puts them together live in its subpackages.
package delivery

import "context"

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
