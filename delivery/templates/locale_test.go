package templates_test

import (
	"testing"

	"github.com/enrollflow/enrollflow/delivery/templates"
)

func TestCanonicalLocale(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"en", "en", true},
		{"EN", "en", true},
		{"es-ES", "es-ES", true},
		{"es-es", "es-ES", true},
		{"ES_es", "es-ES", true},
		{"pt-br", "pt-BR", true},
		{"zh-hant-tw", "zh-Hant-TW", true},
		{"ZH-HANT", "zh-Hant", true},
		{"es-419", "es-419", true},
		{"yue", "yue", true},
		{"ca-ES-VALENCIA", "ca-ES-valencia", true},
		{"de-1996", "de-1996", true},
		{"", "", false},
		{"e", "", false},
		{"english", "", false},
		{"en-", "", false},
		{"-en", "", false},
		{"en--US", "", false},
		{"en-US-Latn", "", false}, // script after region
		{"en-U", "", false},
		{"en-12", "", false},
		{"en US", "", false},
		{"1n", "", false},
		{"en/US", "", false},
		{"en-abcdefghi", "", false},
		{"en-Latn-US-valencia-valencia-valencia-valencia", "", false}, // over 35 characters
	}
	for _, tt := range tests {
		got, ok := templates.CanonicalLocale(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CanonicalLocale(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCanonicalLocaleDoesNotAllocateWhenCanonical(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { templates.CanonicalLocale("zh-Hant-TW") })
	if allocs != 0 {
		t.Fatalf("CanonicalLocale of a canonical tag allocated %v times", allocs)
	}
}
