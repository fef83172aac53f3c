package delivery

import "strings"

// Built-in English device-pairing texts, used until templates are
// configured. ${otp} is replaced by the passcode.
const (
	pairingEmailSubject = "Your verification code"
	pairingEmailBody    = "Use this code to finish setting up your e-mail address for sign-in: ${otp}\n\nIf you did not ask for it, ignore this message."
	pairingSMS          = "Your verification code is ${otp}."
	pairingVoice        = "Your verification code is: ${otp}. Again, your code is: ${otp}."
)

// PairingMessage renders the built-in device-pairing message for a method.
func PairingMessage(envID string, method Method, recipient, locale, otp string) Message {
	msg := Message{EnvID: envID, Method: method, Recipient: recipient, Locale: locale}
	switch method {
	case Email:
		msg.Subject = pairingEmailSubject
		msg.Body = strings.ReplaceAll(pairingEmailBody, "${otp}", otp)
	case SMS:
		msg.Body = strings.ReplaceAll(pairingSMS, "${otp}", otp)
	case Voice:
		msg.Body = strings.ReplaceAll(pairingVoice, "${otp}", spoken(otp))
	}
	if msg.Locale == "" {
		msg.Locale = "en"
	}
	return msg
}

// spoken separates digits so a text-to-speech engine reads them one by one.
func spoken(otp string) string {
	return strings.Join(strings.Split(otp, ""), ", ")
}
