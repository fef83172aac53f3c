package templates

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGSMAlphabet(t *testing.T) {
	// 128 codes less the escape to the extension table.
	if n := utf8.RuneCountInString(gsmBasic); n != 127 {
		t.Errorf("gsmBasic has %d characters; want 127", n)
	}
	if n := utf8.RuneCountInString(gsmExtension); n != 10 {
		t.Errorf("gsmExtension has %d characters; want 10", n)
	}
	for _, r := range gsmExtension {
		if strings.ContainsRune(gsmBasic, r) {
			t.Errorf("%q is in both tables", r)
		}
	}
	tests := []struct {
		chars          string
		septetsEach    int
		inGSM          bool
		utf16UnitsEach int
	}{
		{"éñüöàèùìòÇØøÅåΔÄÖÑÜßÉæÆ¿¡§£¥¤@$_ΦΓΛΩΠΨΣΘΞ\n\r", 1, true, 1},
		{"^{}\\[~]|€\f", 2, true, 1},
		{"áíóúçÁÍÓÚÈÀ`", 0, false, 1},
		{"😀", 0, false, 2},
	}
	for _, tt := range tests {
		for _, r := range tt.chars {
			var size smsSize
			size.add(string(r))
			if size.ucs2 == tt.inGSM {
				t.Errorf("%q: ucs2 = %v; want %v", r, size.ucs2, !tt.inGSM)
			}
			if tt.inGSM && size.septets != tt.septetsEach {
				t.Errorf("%q: %d septets; want %d", r, size.septets, tt.septetsEach)
			}
			if !tt.inGSM && size.firstNonGSM != r {
				t.Errorf("%q: firstNonGSM = %q", r, size.firstNonGSM)
			}
			if size.utf16Units != tt.utf16UnitsEach {
				t.Errorf("%q: %d UTF-16 units; want %d", r, size.utf16Units, tt.utf16UnitsEach)
			}
		}
	}
}
