package apiv2

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/payflow/payflow/wechatpay"
)

func TestDecodeV2XML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"CDATA and bare", `<xml><appid><![CDATA[wx1]]></appid><total_fee>1</total_fee></xml>`,
			map[string]string{"appid": "wx1", "total_fee": "1"}},
		{"newlines and prolog", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n  <a><![CDATA[x]]></a>\n  <b>2</b>\n</xml>\n",
			map[string]string{"a": "x", "b": "2"}},
		{"Chinese text", `<xml><attach><![CDATA[支付测试]]></attach><body>商品</body></xml>`,
			map[string]string{"attach": "支付测试", "body": "商品"}},
		{"entities in text", `<xml><a>x &amp; y &lt;z&gt;</a></xml>`, map[string]string{"a": "x & y <z>"}},
		{"empty and self-closing", `<xml><a></a><b/></xml>`, map[string]string{"a": "", "b": ""}},
		{"value whitespace kept", `<xml><a><![CDATA[ x ]]></a></xml>`, map[string]string{"a": " x "}},
		{"split CDATA", `<xml><a><![CDATA[a]]]]><![CDATA[>b]]></a></xml>`, map[string]string{"a": "a]]>b"}},
		{"comment skipped", `<xml><!-- hi --><a>1</a></xml>`, map[string]string{"a": "1"}},
		{"empty root", `<xml></xml>`, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeXML([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeXML: %v", err)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecodeV2XMLRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ``},
		{"not xml", `success`},
		{"JSON", `{"return_code":"SUCCESS"}`},
		{"DOCTYPE", `<!DOCTYPE xml [<!ENTITY x "y">]><xml><a>&x;</a></xml>`},
		{"external entity", `<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>`},
		{"undeclared entity", `<xml><a>&x;</a></xml>`},
		{"nested", `<xml><a><b>1</b></a></xml>`},
		{"wrong root", `<html><a>1</a></html>`},
		{"namespaced root", `<p:xml xmlns:p="urn:x"><a>1</a></p:xml>`},
		{"namespaced field", `<xml xmlns:p="urn:x"><p:a>1</p:a></xml>`},
		{"duplicate key", `<xml><a>1</a><a>2</a></xml>`},
		{"trailing element", `<xml><a>1</a></xml><xml></xml>`},
		{"trailing text", `<xml><a>1</a></xml>garbage`},
		{"text in root", `<xml>oops<a>1</a></xml>`},
		{"unclosed", `<xml><a>1</a>`},
		{"mismatched tags", `<xml><a>1</b></xml>`},
		{"invalid UTF-8", "<xml><a>\xff</a></xml>"},
		{"foreign charset", `<?xml version="1.0" encoding="GBK"?><xml><a>1</a></xml>`},
		{"HTML", `<html><body>OK</body></html>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeXML([]byte(tt.in))
			if !errors.Is(err, wechatpay.ErrMalformed) {
				t.Fatalf("DecodeXML = %v, %v; want wechatpay.ErrMalformed", got, err)
			}
		})
	}
}

func TestEncodeV2XML(t *testing.T) {
	got := string(EncodeXML(map[string]string{"b": "2", "a": "x]]>y"}))
	want := `<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a><b><![CDATA[2]]></b></xml>`
	if got != want {
		t.Errorf("EncodeXML = %s, want %s", got, want)
	}
}

func TestV2XMLRoundTrip(t *testing.T) {
	tests := []map[string]string{
		{},
		{"appid": "wx2421b1c4370ec43b", "attach": "支付测试", "total_fee": "1"},
		{"a": "]]>", "b": "]]]]>>", "c": "<tag>&amp;</tag>", "d": "", "e": " spaced\n\ttext ", "f": "cr\r\nlf\r]]>\r"},
	}
	for _, in := range tests {
		got, err := DecodeXML(EncodeXML(in))
		if err != nil {
			t.Fatalf("decode %v: %v", in, err)
		}
		if !maps.Equal(got, in) {
			t.Errorf("round trip: got %q, want %q", got, in)
		}
	}
}

func TestV2Reply(t *testing.T) {
	tests := []struct {
		ok   bool
		msg  string
		want string
	}{
		{true, "", `<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>`},
		{true, "ignored", `<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>`},
		{false, "签名失败", `<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[签名失败]]></return_msg></xml>`},
	}
	for _, tt := range tests {
		got := string(Reply(tt.ok, tt.msg))
		if got != tt.want {
			t.Errorf("Reply(%v, %q) = %s, want %s", tt.ok, tt.msg, got, tt.want)
		}
		if strings.Contains(got, "\n") {
			t.Errorf("Reply contains a newline")
		}
	}
}

func FuzzDecodeXML(f *testing.F) {
	f.Add([]byte(`<xml><appid><![CDATA[wx1]]></appid><total_fee>1</total_fee></xml>`))
	f.Add([]byte(`<xml><a><![CDATA[a]]]]><![CDATA[>b]]></a></xml>`))
	f.Add([]byte("<xml>\r\n<a>x\ry</a></xml>"))
	f.Add([]byte(`<!DOCTYPE xml [<!ENTITY x "y">]><xml><a>&x;</a></xml>`))
	f.Add([]byte(`<xml><a><b>1</b></a></xml>`))
	f.Add([]byte(`<xml><a>&#13;</a></xml>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		params, err := DecodeXML(body)
		if err != nil {
			if !errors.Is(err, wechatpay.ErrMalformed) {
				t.Fatalf("error does not wrap wechatpay.ErrMalformed: %v", err)
			}
			return
		}
		again, err := DecodeXML(EncodeXML(params))
		if err != nil {
			t.Fatalf("re-decode of %q: %v", EncodeXML(params), err)
		}
		if !maps.Equal(params, again) {
			t.Fatalf("round trip changed %q into %q", params, again)
		}
	})
}
