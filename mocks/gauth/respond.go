package gauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"

	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

// status is the {code, message} part of the GAuth ops/environment envelope.
type status struct {
	Code    int    `json:"code"`
	Message string `json:"message,omitempty"`
}

// envelope writes {"status":{...},"data":...}. Non-2xx statuses carry the HTTP
// status as the envelope code, so one number tells both.
func envelope(c echo.Context, httpStatus int, message string, data any) error {
	code := 0
	if httpStatus >= 300 {
		code = httpStatus
	}
	body := struct {
		Status status `json:"status"`
		Data   any    `json:"data,omitempty"`
	}{Status: status{Code: code, Message: message}, Data: data}
	return c.JSON(httpStatus, body)
}

// ok writes a success envelope.
func ok(c echo.Context, data any) error { return envelope(c, http.StatusOK, "OK", data) }

// storeError maps tenant store and Environment Service store errors to
// envelope responses in one place.
func (s *Server) storeError(c echo.Context, op string, err error) error {
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		return envelope(c, http.StatusNotFound, op+": not found", nil)
	case errors.Is(err, tenant.ErrConflict):
		return envelope(c, http.StatusConflict, op+": already exists or owned by another tenant", nil)
	case errors.Is(err, tenant.ErrInvalid):
		return envelope(c, http.StatusBadRequest, fmt.Sprintf("%s: %v", op, err), nil)
	}
	s.log.Error(op, "err", err)
	return envelope(c, http.StatusInternalServerError, op+": internal error", nil)
}

// decodeJSON reads a JSON body into v, mapping size and syntax errors to the
// envelope shape. It accepts both {"data":{...}} and the bare object.
func decodeJSON(c echo.Context, v any) (bool, error) {
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return false, envelope(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit), nil)
		}
		return false, envelope(c, http.StatusBadRequest, "unreadable body", nil)
	}
	var wrapped struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &wrapped); err != nil {
		return false, envelope(c, http.StatusBadRequest, "malformed JSON body", nil)
	}
	if len(wrapped.Data) > 0 && string(wrapped.Data) != "null" {
		raw = wrapped.Data
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// Names the field by its JSON path, not the Go struct.
			return false, envelope(c, http.StatusBadRequest, fmt.Sprintf("%s must be %s, not %s", te.Field, jsonKind(te.Type), te.Value), nil)
		}
		return false, envelope(c, http.StatusBadRequest, "malformed JSON body: "+err.Error(), nil)
	}
	return true, nil
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}

// oauthError is an RFC 6749 §5.2 error.
type oauthError struct {
	status int
	code   string
	desc   string
	// basic asks for a WWW-Authenticate: Basic challenge (invalid_client when
	// the client used HTTP Basic).
	basic bool
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

func errInvalidRequest(format string, a ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: fmt.Sprintf(format, a...)}
}

func errInvalidGrant(format string, a ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", desc: fmt.Sprintf(format, a...)}
}

func (s *Server) writeOAuthError(c echo.Context, e *oauthError) error {
	s.metrics.errors.WithLabelValues(e.code).Inc()
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if e.basic {
		h.Set("WWW-Authenticate", `Basic realm="gauth"`)
	}
	return c.JSON(e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

// bearerError answers an RFC 6750 invalid_token (401) or insufficient_scope.
func bearerError(c echo.Context, httpStatus int, code, desc string) error {
	c.Response().Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="gauth", error=%q, error_description=%q`, code, desc))
	return c.JSON(httpStatus, map[string]string{"error": code, "error_description": desc})
}
