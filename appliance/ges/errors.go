package ges

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors callers (the UI, tests) branch on. The HTTP layer maps them to
// status codes in statusOf, the one place that does so.
var (
	// ErrNotFound: no such callback for this tenant (or it was purged).
	ErrNotFound = errors.New("callback not found")
	// ErrUnknownAPIKey: the platform does not know the API key.
	ErrUnknownAPIKey = errors.New("unknown api key")
	// ErrUnauthorized: credentials missing or invalid.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrCompleted: the callback is already COMPLETED (ORS reports get 409).
	ErrCompleted = errors.New("callback already completed")
	// ErrThrottled: a per-tenant or per-number limit was reached.
	ErrThrottled = errors.New("throttled")
	// ErrSlotFull: the desired slot has no capacity left.
	ErrSlotFull = errors.New("no capacity in the desired time slot")
	// ErrInvalid: the request is malformed or names something unknown.
	ErrInvalid = errors.New("invalid request")
	// ErrForbidden: valid credentials that may not do this (a non-ORS client reporting state).
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: a dependency (platform, store) is unreachable or the service is stopping.
	ErrUnavailable = errors.New("service unavailable")
	// ErrTooLarge: the request body exceeds the configured limit.
	ErrTooLarge = errors.New("request body too large")
	// ErrNoSuchPath: no Engagement API endpoint has the request's path.
	ErrNoSuchPath = errors.New("no such path")
	// ErrMethodNotAllowed: the path names an endpoint, but not for the request's method.
	ErrMethodNotAllowed = errors.New("method not allowed")
)

// Error is an API error: a sentinel kind, a message that names the field or
// cause, and optional data (the proposed slots of a 429).
type Error struct {
	Kind    error
	Message string
	Data    any
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap exposes the kind for errors.Is.
func (e *Error) Unwrap() error { return e.Kind }

// errorf builds an *Error of kind with a formatted message.
func errorf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// invalidf is shorthand for a 400 naming a field or cause.
func invalidf(format string, args ...any) *Error { return errorf(ErrInvalid, format, args...) }

// StatusOf maps an error to its HTTP status. This is the only such mapping.
func StatusOf(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownAPIKey), errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrNoSuchPath):
		return http.StatusNotFound
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrCompleted):
		return http.StatusConflict
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrThrottled), errors.Is(err, ErrSlotFull):
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}
