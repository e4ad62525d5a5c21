package bill

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the reader: it must neither panic
// nor loop, and whatever it accepts must add up: the rows it returned are
// the summary's count and the detail totals are the summary's.
func FuzzReader(f *testing.F) {
	f.Add(document(sampleLines(), sampleSummary))
	f.Add(document(nil, "`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00"))
	f.Add(allHeader + "\n" + sampleLines()[0] + "\n" + summaryHeader + "\n`1,`0.29,`0.00,`0.00,`0.00000,`0.29,`0.00\n")
	f.Add("交易时间,商户号\n`x,`y\n总交易单数\n`1")
	f.Add("")
	f.Fuzz(func(t *testing.T, doc string) {
		r := NewReader(strings.NewReader(doc), Options{MaxBytes: 1 << 20})
		n := int64(0)
		for i := 0; ; i++ {
			row, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error not wrapping ErrInvalid: %v", err)
				}
				return
			}
			if i > len(doc) {
				t.Fatal("more rows than bytes")
			}
			if row.Kind != KindPayment && row.Kind != KindRefund && row.Kind != KindRevoked {
				t.Fatalf("row of kind %q", row.Kind)
			}
			n++
		}
		if s, c := r.Summary(), r.Computed(); s.Rows != n || c.Rows != n {
			t.Fatalf("accepted a bill of %d rows whose summary says %d (computed %d)", n, s.Rows, c.Rows)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("after the end: %v", err)
		}
	})
}

// FuzzParseYuan: an accepted amount renders back to exactly its text, so
// nothing is lost or rounded on the way to fen.
func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"0.00", "0.29", "19.90", "1.67", "100.00", "1.5", "-1.00", "1e2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseYuan(s)
		if err != nil {
			return
		}
		if v < 0 || FormatYuan(v) != s {
			t.Fatalf("ParseYuan(%q) = %d, which renders as %q", s, v, FormatYuan(v))
		}
	})
}
