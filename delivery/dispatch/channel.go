package dispatch

import (
	"fmt"
	"maps"
	"slices"
	"strings"

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
	// HeadersEnv maps webhook header names to environment variables holding
	// their values ({"Authorization": "GATEWAY_TOKEN"}), for headers that
	// are credentials. Webhook channels and the configuration file only,
	// like CredentialEnv.
	HeadersEnv map[string]string `json:"headersEnv,omitempty"`
}

// redactedValue stands for a header value the API does not show.
const redactedValue = "********"

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

// fromEnvironment fills in what the configuration file left to the
// environment: the secret named by CredentialEnv, the header values named
// by HeadersEnv. The error is a path below the channel, as in
// "headersEnv.Authorization: environment variable GW_TOKEN is empty"; it
// never holds a value read.
func (c *Channel) fromEnvironment() error {
	if c.CredentialEnv != "" {
		secret, ok := lookupEnv(c.CredentialEnv)
		if !ok || secret == "" {
			return fmt.Errorf("credentialEnv: environment variable %s is empty", c.CredentialEnv)
		}
		c.setCredential(secret)
	}
	if len(c.HeadersEnv) == 0 {
		return nil
	}
	if c.Type != TypeWebhook {
		return fmt.Errorf("headersEnv: is used by webhook channels only")
	}
	if c.Webhook == nil {
		return nil // Validate reports the missing section
	}
	values := make(map[string]string, len(c.HeadersEnv))
	for _, name := range sortedKeys(c.HeadersEnv) {
		for other := range values {
			if strings.EqualFold(other, name) {
				return fmt.Errorf("headersEnv.%s: the same header as headersEnv.%s", name, other)
			}
		}
		for configured := range c.Webhook.Headers {
			if strings.EqualFold(configured, name) {
				return fmt.Errorf("headersEnv.%s: webhook.headers sets %s too", name, configured)
			}
		}
		variable := c.HeadersEnv[name]
		if variable == "" {
			return fmt.Errorf("headersEnv.%s: names no environment variable", name)
		}
		value, ok := lookupEnv(variable)
		if !ok || value == "" {
			return fmt.Errorf("headersEnv.%s: environment variable %s is empty", name, variable)
		}
		values[name] = value
	}
	c.setHeaders(values)
	return nil
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

// setHeaders adds header values read from the environment to
// webhook.headers. The section and its map are copied first: both are
// shared with the caller's configuration, which must not come to hold the
// values.
func (c *Channel) setHeaders(values map[string]string) {
	w := *c.Webhook
	headers := make(map[string]string, len(w.Headers)+len(values))
	maps.Copy(headers, w.Headers)
	maps.Copy(headers, values)
	w.Headers = headers
	c.Webhook = &w
}

// Redacted is the channel as the API shows it: credentials are write-only,
// and so are webhook header values (an API key, a bearer token), of which
// only the names are shown.
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
		if w.Headers != nil {
			headers := make(map[string]string, len(w.Headers))
			for name := range w.Headers {
				headers[name] = redactedValue
			}
			w.Headers = headers
		}
		c.Webhook = &w
	}
	return c
}

// newSender builds the channel's sender. outbox serves TypeOutbox. A
// restricted sender refuses to connect to this machine and to link-local
// addresses (the cloud metadata service), whatever the host resolves to:
// it serves channels saved through the API.
func (c *Channel) newSender(outbox delivery.Sender, restrict bool) (delivery.Sender, error) {
	switch c.Type {
	case TypeSMTP:
		var opts []smtp.Option
		if restrict {
			opts = append(opts, smtp.RestrictDestinations())
		}
		return smtp.New(*c.SMTP, opts...)
	case TypeWebhook:
		var opts []webhook.Option
		if restrict {
			opts = append(opts, webhook.RestrictDestinations())
		}
		return webhook.New(*c.Webhook, opts...)
	case TypeTwilio:
		var opts []twilio.Option
		if restrict {
			opts = append(opts, twilio.RestrictDestinations())
		}
		return twilio.New(*c.Twilio, opts...)
	case TypeOutbox:
		if outbox == nil {
			return nil, fmt.Errorf("no outbox directory is configured on this node")
		}
		return outbox, nil
	}
	return nil, fmt.Errorf("unknown channel type %q", c.Type)
}

// validateForAPI applies the rules for a channel saved through the API on
// top of Validate's: its section's ValidateForAPI (no destination on this
// machine or link-local, no plain http, no smtp.caFile). The error names
// the field, as Validate's do.
func (c *Channel) validateForAPI() error {
	switch c.Type {
	case TypeSMTP:
		return c.SMTP.ValidateForAPI()
	case TypeWebhook:
		return c.Webhook.ValidateForAPI()
	case TypeTwilio:
		return c.Twilio.ValidateForAPI()
	}
	return nil
}
