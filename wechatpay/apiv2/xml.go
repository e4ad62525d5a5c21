package apiv2

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/payflow/payflow/wechatpay"
)

// DecodeXML parses a flat <xml><k>v</k>…</xml> document, as WeChat Pay
// API v2 sends it, into a map. Values may be CDATA or plain text and are
// kept byte for byte (no trimming), because the signature covers them as
// they are. It rejects DOCTYPE and other declarations, nested elements,
// namespaced names, duplicate keys, a root other than <xml>, and anything
// but whitespace or comments after the root. Every error wraps wechatpay.ErrMalformed.
// The caller limits the body size.
func DecodeXML(body []byte) (map[string]string, error) { return decodeFlat(body, "xml") }

// decodeFlat is DecodeXML with another root element: the decrypted
// req_info of a refund notification is <root>…</root>.
func decodeFlat(body []byte, root string) (map[string]string, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	// No CharsetReader: a document declaring a charset other than UTF-8 is rejected.

	params := make(map[string]string)
	const (
		beforeRoot = iota
		inRoot
		inField
		afterRoot
	)
	state := beforeRoot
	var key string
	var val strings.Builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if state != afterRoot {
				return nil, fmt.Errorf("%w: unexpected end of document", wechatpay.ErrMalformed)
			}
			return params, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", wechatpay.ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, fmt.Errorf("%w: declarations (DOCTYPE, ENTITY) are not allowed", wechatpay.ErrMalformed)
		case xml.ProcInst:
			if state != beforeRoot {
				return nil, fmt.Errorf("%w: processing instruction inside the document", wechatpay.ErrMalformed)
			}
		case xml.Comment:
			// Ignored wherever it appears.
		case xml.CharData:
			if state == inField {
				val.Write(t)
			} else if len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("%w: text outside a field", wechatpay.ErrMalformed)
			}
		case xml.StartElement:
			if t.Name.Space != "" {
				return nil, fmt.Errorf("%w: namespaced element", wechatpay.ErrMalformed)
			}
			switch state {
			case beforeRoot:
				if t.Name.Local != root {
					return nil, fmt.Errorf("%w: root element is not <%s>", wechatpay.ErrMalformed, root)
				}
				state = inRoot
			case inRoot:
				key = t.Name.Local
				if _, dup := params[key]; dup {
					return nil, fmt.Errorf("%w: duplicate field %q", wechatpay.ErrMalformed, key)
				}
				val.Reset()
				state = inField
			case inField:
				return nil, fmt.Errorf("%w: nested element in field %q", wechatpay.ErrMalformed, key)
			default:
				return nil, fmt.Errorf("%w: trailing content after </xml>", wechatpay.ErrMalformed)
			}
		case xml.EndElement:
			// The decoder in strict mode guarantees end tags match start tags.
			switch state {
			case inField:
				params[key] = val.String()
				state = inRoot
			case inRoot:
				state = afterRoot
			}
		}
	}
}

// EncodeXML renders params as <xml><k><![CDATA[v]]></k>…</xml> with the
// keys sorted and no whitespace between tags, which is what WeChat accepts.
// A value containing "]]>" is split across two CDATA sections so that it
// decodes unchanged, and a carriage return is written as &#13; outside
// CDATA for the same reason. Keys must be XML names and values valid
// UTF-8 XML characters.
func EncodeXML(params map[string]string) []byte {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("<xml>")
	for _, k := range keys {
		b.WriteString("<" + k + "><![CDATA[")
		for i, part := range strings.Split(params[k], "\r") {
			if i > 0 {
				// XML turns a raw CR into LF; a character reference keeps it.
				b.WriteString("]]>&#13;<![CDATA[")
			}
			b.WriteString(strings.ReplaceAll(part, "]]>", "]]]]><![CDATA[>"))
		}
		b.WriteString("]]></" + k + ">")
	}
	b.WriteString("</xml>")
	return b.Bytes()
}
