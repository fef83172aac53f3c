package actions_test

import (
	"errors"
	"testing"

	"github.com/enrollflow/enrollflow/actions"
)

// TestDecodeNamesWholePathAndCase: an unknown key is named by its whole
// path, and keys must match exactly (encoding/json alone would accept
// "TYPE" for "type" and name only "icon").
func TestDecodeNamesWholePathAndCase(t *testing.T) {
	cases := []struct{ body, field string }{
		{`{"type":"TOTP","rp":{"id":"x","icon":"y"}}`, "rp.icon"},
		{`{"type":"TOTP","application":{"id":"a","secret":"s"}}`, "application.secret"},
		{`{"TYPE":"EMAIL"}`, "TYPE"},
		{`{"type":"EMAIL","Nickname":"n"}`, "Nickname"},
	}
	for _, c := range cases {
		_, err := actions.Decode(actions.ContentType(actions.DeviceCreate), []byte(c.body))
		var de *actions.DecodeError
		if !errors.As(err, &de) || de.Field != c.field || de.Problem != "unknown field" {
			t.Errorf("%s: got %v, want unknown field %s", c.body, err, c.field)
		}
	}
	// Free-form values (attestation) may hold any keys.
	if _, err := actions.Decode(actions.ContentType(actions.DeviceActivate), []byte(`{"attestation":{"Any":{"Key":1}}}`)); err != nil {
		t.Errorf("attestation is free-form: %v", err)
	}
}
