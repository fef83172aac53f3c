// Package twilio delivers SMS and voice passcodes through Twilio's REST API
// (version 2010-04-01), or a service that speaks it: SMS through the
// Messages resource, voice through a Call that reads the message out with
// TwiML <Say>.
package twilio

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/httpchannel"
)

// DefaultBaseURL is Twilio's API.
const DefaultBaseURL = "https://api.twilio.com"

// DefaultTimeout bounds one API request.
const DefaultTimeout = 10 * time.Second

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	// e164 is a phone number in international form: + and 7-15 digits.
	e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// Config is a Twilio channel's settings.
type Config struct {
	AccountSID string `json:"accountSid"`
	AuthToken  string `json:"authToken,omitempty"`
	// From is the caller id for calls, and the SMS sender unless
	// MessagingServiceSID is set; E.164 ("+12015554567"). It may be left
	// empty when MessagingServiceSID is set, for a channel that only
	// sends SMS: a call then fails delivery.Misconfigured "no caller id".
	From string `json:"from"`
	// MessagingServiceSID, when set, sends SMS through that messaging
	// service (which picks the sender) instead of From.
	MessagingServiceSID string `json:"messagingServiceSid,omitempty"`
	// BaseURL is the API's address: https, or http on a loopback host for
	// development (DefaultBaseURL when empty).
	BaseURL string `json:"baseUrl,omitempty"`
	// Voice is the <Say> voice ("alice", "Polly.Joanna", ...); Twilio's
	// default when empty.
	Voice string `json:"voice,omitempty"`
	// Timeout bounds one request (DefaultTimeout when zero).
	Timeout delivery.Duration `json:"timeout,omitempty"`
}

// withDefaults fills the fields left empty.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = delivery.Duration(DefaultTimeout)
	}
	return c
}

// Validate checks the configuration (empty optional fields take their
// defaults). Errors name the field, as in "twilio.from: must be ...", and
// never quote the auth token.
func (c *Config) Validate() error {
	cfg := c.withDefaults()
	switch {
	case !accountSIDPattern.MatchString(cfg.AccountSID):
		return errors.New("twilio.accountSid: must be AC and 32 hex digits")
	case cfg.AuthToken == "":
		return errors.New("twilio.authToken: is required")
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		return errors.New("twilio.from: is required unless twilio.messagingServiceSid is set (calls always need it)")
	case cfg.From != "" && !e164.MatchString(cfg.From):
		return errors.New("twilio.from: must be a phone number in E.164 form (+ and 7-15 digits); calls need it")
	case cfg.MessagingServiceSID != "" && !serviceSIDPattern.MatchString(cfg.MessagingServiceSID):
		return errors.New("twilio.messagingServiceSid: must be MG and 32 hex digits")
	case strings.ContainsAny(cfg.Voice, "\r\n\x00"):
		return errors.New("twilio.voice: must be a voice name")
	case cfg.Timeout < 0:
		return errors.New("twilio.timeout: must be positive")
	}
	return validateBaseURL(cfg.BaseURL)
}

// ValidateForAPI is Validate with the rules for a channel saved through the
// management API rather than the configuration file: the base URL may not
// point at this machine or a link-local address (the cloud metadata
// service), so plain http, which Validate allows on a loopback host only,
// is refused altogether. New with RestrictDestinations enforces the same
// when it connects, whatever the name resolves to.
func (c *Config) ValidateForAPI() error {
	if err := c.Validate(); err != nil {
		return err
	}
	u, _ := httpchannel.ParseAbsolute(c.withDefaults().BaseURL) // Validate accepted it
	switch {
	case u.Scheme == "http":
		return errors.New("twilio.baseUrl: http is allowed on a loopback host only in the configuration file")
	case !httpchannel.AllowedHost(u.Hostname()):
		return errors.New("twilio.baseUrl: must not be this machine or a link-local address")
	}
	return nil
}

// validateBaseURL applies httpchannel's URL rules to the API's address,
// which must be a base to append the resource paths to: no credentials
// (the account's go in basic auth), query or fragment.
func validateBaseURL(raw string) error {
	u, ok := httpchannel.ParseAbsolute(raw)
	switch {
	case !ok:
		return errors.New("twilio.baseUrl: must be an absolute URL")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return errors.New("twilio.baseUrl: must be a scheme, host and optional path only")
	case !httpchannel.SecureScheme(u):
		return errors.New("twilio.baseUrl: must use https (http only on a loopback host)")
	}
	return nil
}

// Sender sends through one Twilio account. It is safe for concurrent use.
type Sender struct {
	cfg         Config
	messagesURL string
	callsURL    string
	client      *http.Client
}

// Option adjusts a Sender; httpchannel's options apply.
type Option = httpchannel.Option

// RestrictDestinations makes the Sender refuse to connect to this machine,
// to link-local addresses (the cloud metadata service) and to the
// unspecified address, checked on the address dialled so that DNS cannot
// get around it, and ignore any HTTP proxy from the environment. A refused
// send fails delivery.Misconfigured with the reason "destination not
// allowed". Use it, with Config.ValidateForAPI, for a channel saved
// through the management API.
func RestrictDestinations() Option { return httpchannel.RestrictDestinations() }

// New validates cfg and builds its Sender.
func New(cfg Config, opts ...Option) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	account := strings.TrimSuffix(cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + cfg.AccountSID
	return &Sender{
		cfg:         cfg,
		messagesURL: account + "/Messages.json",
		callsURL:    account + "/Calls.json",
		client:      httpchannel.NewClient(time.Duration(cfg.Timeout), opts...),
	}, nil
}

// Kind names the channel type.
func (*Sender) Kind() string { return "twilio" }

// Send texts (SMS) or calls (VOICE) msg.Recipient. Failures are
// *delivery.Error values whose text holds neither the number nor the
// message. 429, 5xx and network failures are transient; a refusal of the
// To number (21211, 21614, 21610) is permanent; what the account, token,
// From number or base URL cause (401, 403, 404, a redirect, and the codes
// in misconfiguredCode) is delivery.Misconfigured.
func (s *Sender) Send(ctx context.Context, msg delivery.Message) error {
	if msg.Method != delivery.SMS && msg.Method != delivery.Voice {
		return delivery.Misconfigured("method not supported", nil)
	}
	if !e164.MatchString(msg.Recipient) {
		return delivery.Permanent("bad address", nil)
	}
	form := url.Values{"To": {msg.Recipient}}
	if msg.Method == delivery.Voice {
		if s.cfg.From == "" {
			// A messaging service only sends SMS; a call needs a number.
			return delivery.Misconfigured("no caller id", nil)
		}
		twiml, err := sayTwiML(msg.Body, msg.Locale, s.cfg.Voice)
		if err != nil {
			return delivery.Permanent("bad message", nil)
		}
		// A call needs a caller id: a messaging service only sends SMS.
		form.Set("From", s.cfg.From)
		form.Set("Twiml", twiml)
		return s.post(ctx, s.callsURL, form)
	}
	if s.cfg.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", s.cfg.MessagingServiceSID)
	} else {
		form.Set("From", s.cfg.From)
	}
	form.Set("Body", msg.Body)
	return s.post(ctx, s.messagesURL, form)
}

func (s *Sender) post(ctx context.Context, endpoint string, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return delivery.Misconfigured("bad configuration", nil)
	}
	req.SetBasicAuth(s.cfg.AccountSID, s.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "enrollflow")
	resp, err := s.client.Do(req)
	if err != nil {
		return httpchannel.TransportError(err)
	}
	defer httpchannel.DrainAndClose(resp.Body)
	var code int
	err = httpchannel.StatusError(resp, time.Now(), func(resp *http.Response) string {
		code = errorCode(resp)
		return failureReason(resp.StatusCode, code)
	})
	if misconfiguredCode[code] && delivery.IsPermanent(err) && !delivery.IsMisconfigured(err) {
		return delivery.Misconfigured(delivery.ReasonOf(err), nil)
	}
	return err
}

// misconfiguredCode holds the Twilio error codes that are the channel's
// fault, not the recipient's, whatever the HTTP status they come with:
// the account or token (20003), the account or resource (20404), and a
// From number that cannot send (21606: not an SMS-capable number of the
// account; 21212: invalid; 21659: not owned by the account).
var misconfiguredCode = map[int]bool{
	20003: true,
	20404: true,
	21212: true,
	21606: true,
	21659: true,
}

// twiml is the call script: read the message once. The message text
// already repeats the code, so the script does not.
type twiml struct {
	XMLName xml.Name `xml:"Response"`
	Say     say      `xml:"Say"`
}

type say struct {
	Language string `xml:"language,attr,omitempty"`
	Voice    string `xml:"voice,attr,omitempty"`
	Text     string `xml:",chardata"`
}

// sayTwiML is the TwiML document that reads text in the locale's language;
// encoding/xml escapes it.
func sayTwiML(text, locale, voice string) (string, error) {
	out, err := xml.Marshal(twiml{Say: say{Language: locale, Voice: voice, Text: text}})
	return string(out), err
}

// apiError is the body of a Twilio error reply. Only the numeric code is
// kept: the message may quote the phone number.
type apiError struct {
	Code int `json:"code"`
}

// errorCode is Twilio's error code from the body of a failed reply, or 0
// when there is none.
func errorCode(resp *http.Response) int {
	var body apiError
	if json.NewDecoder(io.LimitReader(resp.Body, httpchannel.ReadLimit)).Decode(&body) == nil && body.Code > 0 {
		return body.Code
	}
	return 0
}

// failureReason is the reason of a failed reply (httpchannel.StatusError
// makes 429 and 5xx transient, other failures permanent): the status and
// Twilio's error code, when there is one, as in "twilio 400 code 21211".
func failureReason(status, code int) string {
	reason := "twilio " + strconv.Itoa(status)
	if code > 0 {
		reason += fmt.Sprintf(" code %d", code)
	}
	return reason
}
