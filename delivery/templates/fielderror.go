package templates

// Codes of a FieldError: the API's error detail codes (engine.Detail*).
const (
	CodeRequired        = "REQUIRED_VALUE"
	CodeInvalidValue    = "INVALID_VALUE"
	CodeLimitExceeded   = "LIMIT_EXCEEDED"
	CodeUnknownVariable = "UNKNOWN_VARIABLE"
)

// FieldError is one problem with one field of a Content. Field is the
// field's JSON name ("subject", "content"); Message reads after it ("is
// required"), so that "content must contain ${otp}" can be shown as is.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + " " + e.Message }
