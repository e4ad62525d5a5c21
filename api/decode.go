package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// errNotOneObject is the answer to a body that is not a single JSON object.
var errNotOneObject = errors.New("body must be exactly one JSON object, with nothing after it")

// decodeJSON reads a request body that must be exactly one JSON object
// into v, a pointer to a struct whose json tags name every accepted field.
// It refuses, with a message that is safe to send back (it names fields,
// never echoes values):
//   - a body over max bytes, or one that is not UTF-8;
//   - anything but one object: null, an array, a number, two objects,
//     trailing data such as a second "}";
//   - a name that is not exactly one of v's (unknown, or another case:
//     Go would otherwise match "AMOUNT_FEN" to amount_fen), or a name
//     given twice;
//   - a null value, and a value of the wrong type (a string for an
//     integer, a fraction or exponent for an integer, an overflow).
//
// Every endpoint with a JSON body uses it, so they all read input the
// same strict way.
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("body is larger than %d bytes", max)
		}
		return errors.New("unreadable body")
	}
	return decodeJSONBytes(body, v)
}

// decodeJSONBytes is decodeJSON on a body already read.
func decodeJSONBytes(body []byte, v any) error {
	if !utf8.Valid(body) {
		return errors.New("body must be UTF-8")
	}
	if err := checkObject(body, jsonFields(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return fmt.Errorf("%s must be %s", typeErr.Field, jsonKind(typeErr.Type))
		}
		return errNotOneObject
	}
	return nil
}

// checkObject walks the body's top level: one object whose names are in
// fields, each once and none null, then the end of the input.
func checkObject(body []byte, fields map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errNotOneObject
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errNotOneObject
		}
		name, _ := tok.(string)
		switch {
		case !fields[name]:
			return fmt.Errorf("unknown field %s", quoteName(name))
		case seen[name]:
			return fmt.Errorf("field %s is given twice", name)
		}
		seen[name] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return errNotOneObject
		}
		if string(value) == "null" {
			return fmt.Errorf("%s must not be null", name)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return errNotOneObject
	}
	// The decoder must reach the end: dec.More() alone misses a stray "}"
	// or "]" after the object.
	if _, err := dec.Token(); err != io.EOF {
		return errNotOneObject
	}
	return nil
}

// jsonFields are the JSON names of the struct v points to.
func jsonFields(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := map[string]bool{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fields[name] = true
	}
	return fields
}

// jsonKind says in words what JSON value a Go type takes.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "of another type"
}

// quoteName quotes a client's field name for an error message, cut short.
func quoteName(name string) string {
	if utf8.RuneCountInString(name) > 40 {
		name = string([]rune(name)[:40]) + "…"
	}
	return strconv.Quote(name)
}

// noBody accepts a request without a body, or with an empty JSON object,
// for the endpoints that take no input: anything else is bad input.
func noBody(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<10))
	if err != nil {
		return errors.New("this endpoint takes no body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := decodeJSONBytes(body, &struct{}{}); err != nil {
		return fmt.Errorf("this endpoint takes no body or {}: %w", err)
	}
	return nil
}
