package templates

import "github.com/enrollflow/enrollflow/delivery"

// builtinTexts are the English contents used when an environment has none
// that fits: short, one GSM-7 SMS segment, and a voice text that says the
// code twice.
var builtinTexts = []Content{
	{
		Method:  delivery.Email,
		Locale:  defaultDefaultLocale,
		Subject: "Your verification code",
		Text: "Use this code to finish setting up your e-mail address for sign-in: ${otp}\n\n" +
			"If you did not ask for it, ignore this message.",
		HTML: `<!DOCTYPE html>
<html lang="en">
<body style="font-family: sans-serif">
<p>Use this code to finish setting up your e-mail address for sign-in:</p>
<p style="font-size: 24px; font-weight: bold; letter-spacing: 4px">${otp}</p>
<p>If you did not ask for it, ignore this message.</p>
</body>
</html>
`,
	},
	{
		Method: delivery.SMS,
		Locale: defaultDefaultLocale,
		Body:   "Your verification code is ${otp}.",
	},
	{
		Method: delivery.Voice,
		Locale: defaultDefaultLocale,
		// The code is said twice: a listener cannot scroll back.
		Body: "Your verification code is: ${otp}. Again, your code is: ${otp}.",
	},
}

// builtinContents are builtinTexts compiled, by method.
var builtinContents = compileBuiltins()

func compileBuiltins() map[delivery.Method]*compiledContent {
	compiled := make(map[delivery.Method]*compiledContent, len(builtinTexts))
	for _, c := range builtinTexts {
		cc, errs := compile(c)
		if errs != nil {
			panic("templates: invalid built-in content " + c.Key().String() + ": " + errs[0].Error())
		}
		compiled[c.Method] = cc
	}
	return compiled
}

// Builtin returns the built-in English content of method, or a zero
// Content for a method that is not EMAIL, SMS or VOICE.
func Builtin(method delivery.Method) Content {
	if m, ok := canonicalMethod(method); ok {
		for _, c := range builtinTexts {
			if c.Method == m {
				return c
			}
		}
	}
	return Content{}
}
