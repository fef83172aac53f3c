// Package templates holds the notification template contents of an
// environment and turns one of them into the message for one passcode.
//
// There is one template for now, [DevicePairing]. It has one [Content] per
// delivery method, locale and optional variant. A [Set] holds the contents
// of one environment; [Set.Render] picks the content that fits a request
// and substitutes its variables.
//
// # Selection
//
// The candidate locales are the requested locale, then its parents
// ("zh-Hant-TW", "zh-Hant", "zh"), then the environment's default locale
// and its parents, each tried once. In each candidate locale the requested
// variant is tried first, then the locale's default content. Language
// therefore wins over variant: a Spanish reader gets the Spanish default
// content rather than an English variant. When nothing matches, the
// built-in English content of the method is used ([Builtin]). A content of
// one method never serves another method.
//
// A requested locale that is not a language tag ([CanonicalLocale]) is
// treated as no locale: the message still goes out, in the default
// locale.
//
// # Variables
//
// A placeholder is written ${name}. The built-in variables are ${otp} (the
// passcode), ${user.username}, ${user.email} and ${user.mobilePhone}; a
// built-in whose value the request does not have renders empty.
//
// Any other name is one of the integrator's template.variables, for example
// ${orderId} or ${brand.name}. Those are only known when a message is
// sent, so saving a content accepts any well-formed name
// ([A-Za-z_][A-Za-z0-9_]* parts joined by ".") except in the namespaces
// "otp" and "user", which are ours (compared case-insensitively): ${user.phone}
// or ${OTP} is refused with UNKNOWN_VARIABLE at save time instead of
// silently rendering blank. An integrator variable missing from the request
// renders as the empty string, so that the passcode still reaches the user,
// and its name is reported in [Rendered].Missing for the caller to log.
//
// There is no escape: "${" always opens a placeholder, and a placeholder
// that is empty, contains spaces or is not closed is refused at save time.
// Substitution is a single pass: a value that itself contains "${otp}" is
// inserted as it is.
//
// # Where values go
//
// In an e-mail's HTML body every value is HTML-escaped (the template's own
// markup is trusted: it is written by the environment's administrators). In
// the subject, CR and LF in values become spaces so that a value cannot
// start a new mail header. For VOICE, ${otp} is spoken digit by digit
// ("1, 2, 3, 4, 5, 6": the commas make text-to-speech engines pause).
// Elsewhere values are inserted as they are.
//
// # Rules checked when a content is saved
//
//   - ${otp} is required in the body: SMS and VOICE content, the e-mail text
//     and, when present, the e-mail HTML. It is refused in the subject,
//     which mail clients show in notification previews.
//   - The subject is at most 256 characters as written; the e-mail text and
//     HTML are at most 100 kB (102400 bytes) each.
//   - An SMS content, rendered with the longest passcode (10 digits) and
//     every other variable empty, must fit one part of a concatenated SMS:
//     153 GSM-7 characters when every character is in the GSM 03.38 default
//     alphabet (characters of its extension table, such as € or {, count
//     twice), otherwise 67 UTF-16 units (UCS-2). Integrator and user
//     variables can make a sent SMS longer; that is accepted, as their
//     length is the integrator's choice and the carrier splits long messages.
//   - A VOICE content, rendered the same way with the passcode spoken digit
//     by digit, is at most 4000 characters, below the text limit of common
//     text-to-speech services.
package templates

// DevicePairing is the template whose contents carry the passcode that
// pairs a new MFA device. It is the only template for now.
const DevicePairing = "device_pairing"
