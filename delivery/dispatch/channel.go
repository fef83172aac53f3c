package dispatch

import (
	"fmt"
	"slices"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/smtp"
	"github.com/enrollflow/enrollflow/delivery/twilio"
	"github.com/enrollflow/enrollflow/delivery/webhook"
)

// Channel types.
const (
	TypeSMTP    = "smtp"    // EMAIL through a mail server
	TypeWebhook = "webhook" // SMS, VOICE (or EMAIL): a signed JSON POST to the operator's own gateway
	TypeTwilio  = "twilio"  // SMS (Messages), VOICE (Calls): Twilio's REST API or a compatible one
	TypeOutbox  = "outbox"  // any method: a JSON file per message, for development
)

// Channel is how an environment delivers one method: its type and that
// type's settings. The config file and the management API use this JSON.
type Channel struct {
	Type    string          `json:"type"`
	SMTP    *smtp.Config    `json:"smtp,omitempty"`
	Webhook *webhook.Config `json:"webhook,omitempty"`
	Twilio  *twilio.Config  `json:"twilio,omitempty"`
	// Retry bounds the attempts on transient failures; defaults apply.
	Retry *delivery.RetryPolicy `json:"retry,omitempty"`
	// CredentialEnv names an environment variable holding the type's secret
	// (smtp.password, twilio.authToken, webhook.secret), so that the config
	// file need not hold it. Configuration file only: through the API it
	// would let a caller send a node's environment to a server of its
	// choosing.
	CredentialEnv string `json:"credentialEnv,omitempty"`
}

// methodsOf lists the methods each channel type can carry.
var methodsOf = map[string][]delivery.Method{
	TypeSMTP:    {delivery.Email},
	TypeWebhook: {delivery.Email, delivery.SMS, delivery.Voice},
	TypeTwilio:  {delivery.SMS, delivery.Voice},
	TypeOutbox:  {delivery.Email, delivery.SMS, delivery.Voice},
}

// Validate checks the channel for method; the error names the field.
func (c *Channel) Validate(method delivery.Method) error {
	methods, ok := methodsOf[c.Type]
	if !ok {
		return fmt.Errorf("type: must be smtp, webhook, twilio or outbox")
	}
	if !slices.Contains(methods, method) {
		return fmt.Errorf("type: a %s channel cannot deliver %s (it carries %v)", c.Type, method, methods)
	}
	sections := map[string]bool{TypeSMTP: c.SMTP != nil, TypeWebhook: c.Webhook != nil, TypeTwilio: c.Twilio != nil}
	for name, present := range sections {
		if present && name != c.Type {
			return fmt.Errorf("%s: is not used by a %s channel", name, c.Type)
		}
	}
	if c.Type != TypeOutbox && !sections[c.Type] {
		return fmt.Errorf("%s: is required for a %s channel", c.Type, c.Type)
	}
	if c.Retry != nil {
		if err := c.Retry.WithDefaults().Validate(); err != nil {
			return fmt.Errorf("retry.%w", err)
		}
	}
	var err error
	switch c.Type {
	case TypeSMTP:
		err = c.SMTP.Validate()
	case TypeWebhook:
		err = c.Webhook.Validate()
	case TypeTwilio:
		err = c.Twilio.Validate()
	}
	return err
}

// retryPolicy is the channel's retry policy with the defaults filled in.
func (c *Channel) retryPolicy() delivery.RetryPolicy {
	if c.Retry == nil {
		return delivery.RetryPolicy{}.WithDefaults()
	}
	return c.Retry.WithDefaults()
}

// setCredential puts a secret read from the environment into the type's
// secret field. The section is copied first: it is a pointer shared with
// the caller's configuration, which must not come to hold the secret.
func (c *Channel) setCredential(secret string) {
	switch {
	case c.SMTP != nil:
		s := *c.SMTP
		s.Password = secret
		c.SMTP = &s
	case c.Twilio != nil:
		t := *c.Twilio
		t.AuthToken = secret
		c.Twilio = &t
	case c.Webhook != nil:
		w := *c.Webhook
		w.Secret = secret
		c.Webhook = &w
	}
}

// Redacted is the channel as the API shows it: credentials are write-only.
func (c Channel) Redacted() Channel {
	if c.SMTP != nil {
		s := *c.SMTP
		s.Password = ""
		c.SMTP = &s
	}
	if c.Twilio != nil {
		t := *c.Twilio
		t.AuthToken = ""
		c.Twilio = &t
	}
	if c.Webhook != nil {
		w := *c.Webhook
		w.Secret = ""
		c.Webhook = &w
	}
	return c
}

// newSender builds the channel's sender. outbox serves TypeOutbox.
func (c *Channel) newSender(outbox delivery.Sender) (delivery.Sender, error) {
	switch c.Type {
	case TypeSMTP:
		return smtp.New(*c.SMTP)
	case TypeWebhook:
		return webhook.New(*c.Webhook)
	case TypeTwilio:
		return twilio.New(*c.Twilio)
	case TypeOutbox:
		if outbox == nil {
			return nil, fmt.Errorf("no outbox directory is configured on this node")
		}
		return outbox, nil
	}
	return nil, fmt.Errorf("unknown channel type %q", c.Type)
}
